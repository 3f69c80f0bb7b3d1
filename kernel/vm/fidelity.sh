#!/usr/bin/env bash
# Holds the probe of a real kernel's tree against the probe of simfs's twin:
#
#   fidelity.sh PROBE.kernel PROBE.simfs LIST
#
# Every line in which the two differ ("- " the kernel's, "+ " simfs's) must
# be in LIST, under a "#" comment giving the reason; a listed line ending in
# "= *" stands for the file with any content. Every line LIST names must
# still differ (a fixed difference is removed from the list). Prints a
# one-line summary, or the offending lines, and exits non-zero on any.
set -euo pipefail
kernel="$1" simfs="$2" list="$3"
[ -f "$list" ] || { echo "fidelity list $list is missing" >&2; exit 1; }
diffs="$(mktemp)" listed="$(mktemp)"
trap 'rm -f "$diffs" "$listed"' EXIT
diff --unchanged-line-format= --old-line-format='- %L' --new-line-format='+ %L' "$kernel" "$simfs" |
    sort -u >"$diffs" || true
grep -v -e '^#' -e '^$' "$list" | sort -u >"$listed" || true
# Each difference is matched by its exact line, or by "<path> = *" for any content.
matched="$(mktemp)"
trap 'rm -f "$diffs" "$listed" "$matched"' EXIT
awk 'NR == FNR { listed[$0] = 1; next }
     { any = $0; sub(/ = .*$/, " = *", any) }
     ($0 in listed) { print $0 "\t" $0; next }
     (any in listed) { print $0 "\t" any; next }
     { print $0 "\t" }' "$listed" "$diffs" >"$matched"
undocumented="$(awk -F '\t' '$2 == "" { print $1 }' "$matched")"
stale="$(cut -f2 "$matched" | grep -v '^$' | sort -u | comm -13 - "$listed")"
if [ -n "$undocumented" ] || [ -n "$stale" ]; then
    if [ -n "$undocumented" ]; then
        echo "the real kernel and simfs differ in lines $list does not list (fix simfs or list them with a reason):"
        printf '%s\n' "$undocumented"
    fi
    if [ -n "$stale" ]; then
        echo "$list lists lines that no longer differ (remove them):"
        printf '%s\n' "$stale"
    fi
    exit 1
fi
echo "probe: $(wc -l <"$kernel") kernel lines, $(wc -l <"$diffs") differ from simfs, each listed in $(basename "$list")"
