//! Bipartite matching of a VM's sources to distinct targets on one host (augmenting paths).

/// For `edges[s]` = the targets source `s` may use, a target per source, all distinct, or
/// `None` when no such assignment exists. Deterministic: prefers earlier targets.
pub fn assign(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    let targets = edges.iter().flatten().copied().max().map_or(0, |m| m + 1);
    let mut owner: Vec<Option<usize>> = vec![None; targets];
    for s in 0..edges.len() {
        let mut seen = vec![false; targets];
        if !augment(s, edges, &mut owner, &mut seen) {
            return None;
        }
    }
    let mut out = vec![usize::MAX; edges.len()];
    for (t, o) in owner.iter().enumerate() {
        if let Some(s) = o {
            out[*s] = t;
        }
    }
    Some(out)
}

fn augment(s: usize, edges: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &t in &edges[s] {
        if seen[t] {
            continue;
        }
        seen[t] = true;
        if owner[t].is_none_or(|o| augment(o, edges, owner, seen)) {
            owner[t] = Some(s);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn needs_distinct_targets() {
        assert_eq!(assign(&[vec![0], vec![0]]), None);
        assert_eq!(assign(&[vec![0, 1], vec![0]]), Some(vec![1, 0]));
        assert_eq!(assign(&[]), Some(vec![]));
        assert_eq!(assign(&[vec![]]), None);
    }

    /// Brute force: does any injective choice exist?
    fn exists(edges: &[Vec<usize>], used: &mut Vec<usize>) -> bool {
        let s = used.len();
        if s == edges.len() {
            return true;
        }
        for &t in &edges[s] {
            if !used.contains(&t) {
                used.push(t);
                if exists(edges, used) {
                    return true;
                }
                used.pop();
            }
        }
        false
    }

    proptest! {
        #[test]
        fn agrees_with_brute_force(edges in prop::collection::vec(prop::collection::vec(0usize..5, 0..4), 0..5)) {
            let got = assign(&edges);
            prop_assert_eq!(got.is_some(), exists(&edges, &mut Vec::new()));
            if let Some(a) = got {
                let mut seen = std::collections::HashSet::new();
                for (s, t) in a.iter().enumerate() {
                    prop_assert!(edges[s].contains(t));
                    prop_assert!(seen.insert(*t));
                }
            }
        }
    }
}
