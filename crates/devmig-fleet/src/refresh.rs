//! Group commit for unchanged reports. In steady state almost every report is a refresh: same
//! URL, same devices, a newer generation. Concurrent refreshes are gathered and written in one
//! statement (one commit): the first caller to find no batch running writes everything queued,
//! callers arriving meanwhile form the next batch. A report the batch does not match (new
//! host, changed devices, moved URL, not newer) takes the full path.
use std::collections::{HashMap, HashSet};

use parking_lot::{Condvar, Mutex};

use crate::FleetError;
use crate::db::{Conn, Pool, Val};

/// Most refreshes written by one statement.
const MAX_BATCH: usize = 256;

/// One refresh: the host, its URL, its devices' digest and the report's generation.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub(crate) host: String,
    pub(crate) url: String,
    pub(crate) identity: String,
    pub(crate) digest: String,
    pub(crate) generation: i64,
}

#[derive(Default)]
struct State {
    queued: Vec<(u64, Refresh)>,
    writing: bool,
    next_ticket: u64,
    /// Per ticket: whether its refresh was written, or the batch's error.
    done: HashMap<u64, Result<bool, String>>,
}

/// The queue of refreshes waiting for a batch.
#[derive(Default)]
pub(crate) struct Refresher {
    state: Mutex<State>,
    finished: Condvar,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher").finish_non_exhaustive()
    }
}

impl Refresher {
    /// Writes `r` with whatever refreshes are queued with it: true when the host's row was
    /// bumped (same URL and digest, older generation), false when the report needs the full path.
    pub(crate) fn refresh(&self, r: Refresh, now_ms: i64, pool: &Pool) -> Result<bool, FleetError> {
        let mut st = self.state.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queued.push((ticket, r));
        loop {
            if let Some(result) = st.done.remove(&ticket) {
                return result.map_err(|why| FleetError::db(format!("a batched refresh: {why}")));
            }
            if st.writing {
                self.finished.wait(&mut st);
                continue;
            }
            st.writing = true;
            let take = st.queued.len().min(MAX_BATCH);
            let batch: Vec<(u64, Refresh)> = st.queued.drain(..take).collect();
            drop(st);
            let written = write_batch(&mut pool.writer(), &batch, now_ms).map_err(|e| devmig_core::error_chain(&e));
            st = self.state.lock();
            for (t, r) in &batch {
                let result = written.as_ref().map(|names| names.contains(&(r.host.clone(), r.generation)));
                st.done.insert(*t, result.map_err(Clone::clone));
            }
            st.writing = false;
            self.finished.notify_all();
        }
    }
}

/// One `UPDATE ... FROM` for the batch; the (host, generation) pairs it wrote. A host listed
/// twice keeps only its newest generation here (the others take the full path). Batches are
/// padded to a power of two with repeats, so the statement texts stay few.
fn write_batch(conn: &mut Conn, batch: &[(u64, Refresh)], now_ms: i64) -> Result<HashSet<(String, i64)>, FleetError> {
    let mut newest: HashMap<&str, &Refresh> = HashMap::new();
    for (_, r) in batch {
        let e = newest.entry(r.host.as_str()).or_insert(r);
        if r.generation > e.generation {
            *e = r;
        }
    }
    let mut rows: Vec<&Refresh> = newest.into_values().collect();
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let padded = rows.len().next_power_of_two();
    while rows.len() < padded {
        rows.push(rows[rows.len() - 1]);
    }
    let mut values = Vec::with_capacity(rows.len());
    let mut params = vec![Val::Int(now_ms)];
    for r in &rows {
        let n = params.len();
        values.push(format!("(${}, ${}, ${}, ${}, CAST(${} AS BIGINT))", n + 1, n + 2, n + 3, n + 4, n + 5));
        params.extend([
            r.host.as_str().into(),
            r.url.as_str().into(),
            r.identity.as_str().into(),
            r.digest.as_str().into(),
            Val::Int(r.generation),
        ]);
    }
    // Only the same agent (URL and identity) refreshes a row; anything else takes the full path,
    // which says why it refuses.
    let sql = format!(
        "WITH v (name, url, identity, digest, generation) AS (VALUES {}) \
         UPDATE hosts SET generation = v.generation, last_seen_ms = $1 FROM v \
         WHERE hosts.name = v.name AND hosts.url = v.url AND hosts.identity = v.identity \
         AND hosts.digest = v.digest \
         AND hosts.generation < v.generation RETURNING hosts.name, hosts.generation",
        values.join(", ")
    );
    if !conn.is_postgres() {
        // SQLite has one writer: nothing to order.
        let written = conn.query(&sql, &params)?;
        return Ok(written.into_iter().map(|row| (row[0].text().to_string(), row[1].int())).collect());
    }
    // Two replicas batching overlapping hosts would lock the rows in their join's order and can
    // deadlock (PostgreSQL 40P01): lock them in name order first, in the same transaction.
    let names: Vec<&str> = {
        let mut n: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
        n.sort_unstable();
        n.dedup();
        n
    };
    let list: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let lock = format!("SELECT id FROM hosts WHERE name IN ({}) ORDER BY name FOR UPDATE", list.join(", "));
    let lock_params: Vec<Val> = names.iter().map(|n| Val::from(*n)).collect();
    let written = conn.transaction(|c| {
        c.query(&lock, &lock_params)?;
        c.query(&sql, &params)
    })?;
    Ok(written.into_iter().map(|row| (row[0].text().to_string(), row[1].int())).collect())
}
