#!/usr/bin/env bash
# Record-count throughput of openpay's scanner (crates/records) against the
# standard tools, on the same CMS-shaped file, in one run (issue 11,
# "Performance"). The file: the real 91-column General Payments header,
# every field quoted, CRLF line ends, a CRLF inside the address of every
# 7th record, doubled quotes; BENCH_MIB MiB (default 1024), generated once.
#
#   openpay   crates/records, one core (taskset -c 0), release build of the
#             scanner crate only (no AWS SDK)
#   wc -l     counts line feeds, including those inside quoted fields (wrong
#             by design; the speed ceiling of a byte scan)
#   python    csv.reader (CPython's C parser), strict=True
#   duckdb    SELECT count(*) FROM read_csv(..., strict_mode=true), threads=1
#   csv crate the Rust csv crate's reader, as `xsv count` runs it (xsv/qsv
#             themselves are timed too when on PATH; not installed here:
#             `cargo install xsv` costs minutes of build on this machine)
#
# Every tool's count is printed next to its time; the scanner's must equal
# Python's and DuckDB's (wc -l differs by the embedded line feeds).
#
# Usage: bench/records.sh               (1 GiB)
#        BENCH_MIB=256 bench/records.sh
# Env: BENCH_MIB, BENCH_TMP (scratch parent, default /tmp),
#      BENCH_CACHE (venv with duckdb, default ~/.cache/openpay-bench)
set -euo pipefail

BENCH_MIB=${BENCH_MIB:-1024}
CACHE=${BENCH_CACHE:-$HOME/.cache/openpay-bench}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }
[[ $BENCH_MIB =~ ^[1-9][0-9]*$ ]] || die "BENCH_MIB=$BENCH_MIB: give a whole number of MiB, e.g. BENCH_MIB=1024"

scratch=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/openpay-records.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
file=$scratch/cms.csv

log "building the scanner (crates/records, release)"
(cd "$REPO" && cargo build --quiet --release -p openpay-records --example records)
bin=${CARGO_TARGET_DIR:-$REPO/target}/release/examples/records

venv=$CACHE/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  log "installing duckdb into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check duckdb
fi
py=$venv/bin/python

log "generating $BENCH_MIB MiB"
"$bin" gen "$REPO/layouts/general-payments.91.csv" $((BENCH_MIB << 20)) "$file"
bytes=$(stat -c %s "$file")
cat "$file" >/dev/null # into the page cache: every tool reads from memory

# Each tool runs pinned to one core (taskset -c 0) under /usr/bin/time.
# The figure compared is CPU seconds (user + sys): on a shared machine the
# wall clock measures the neighbours too; it is shown beside.
# Prints "CPU_SECONDS WALL_SECONDS COUNT".
measure() {
  local out
  out=$(/usr/bin/time -f '%U %S %e' -o "$scratch/time" taskset -c 0 "$@")
  read -r user sys wall <"$scratch/time"
  # time(1) counts in hundredths: never divide by zero.
  echo "$(echo "x = $user + $sys; if (x < 0.01) x = 0.01; x" | bc) $wall $out"
}
# shellcheck disable=SC2016 # the inner shell expands them
t_openpay() { measure sh -c '"$1" count "$2" | sed -E "s/.*records=([0-9]+).*/\1/"' _ "$bin" "$file"; }
# shellcheck disable=SC2016
t_wc() { measure sh -c 'wc -l <"$1"' _ "$file"; }
t_python() {
  measure "$py" -c 'import csv,sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    print(sum(1 for r in csv.reader(f, strict=True) if r) - 1)' "$file"
}
t_duckdb() {
  measure "$py" -c 'import duckdb,sys
c = duckdb.connect(); c.execute("SET threads=1"); c.execute("SET enable_progress_bar=false")
print(c.execute("SELECT count(*) FROM read_csv(?, header=true, all_varchar=true, strict_mode=true)", [sys.argv[1]]).fetchone()[0])' "$file"
}
# shellcheck disable=SC2016
t_csv_crate() { measure sh -c '"$1" csv-crate "$2" | sed -E "s/.*records=([0-9]+).*/\1/"' _ "$bin" "$file"; }
t_xsv() { measure "$1" count "$file"; }

rows=()
add() { rows+=("$1 $2"); }
log "timing"
add openpay "$(t_openpay)"
add "wc -l" "$(t_wc)"
add "python csv" "$(t_python)"
add "duckdb strict" "$(t_duckdb)"
add "csv crate" "$(t_csv_crate)"
for x in xsv qsv; do
  if command -v "$x" >/dev/null; then add "$x count" "$(t_xsv "$x")"; else log "$x not on PATH: skipped"; fi
done

# Each row: NAME... CPU WALL COUNT.
field() { awk -v k="$2" '{print $(NF-k)}' <<<"$1"; }
base=$(field "${rows[0]}" 2)
printf '\nFile: %s MiB (%s bytes), CMS-shaped; one core each; load average %s.\n\n' \
  "$BENCH_MIB" "$bytes" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| tool | count | CPU s | wall s | GB/s (CPU) | CPU time vs openpay |\n|---|---:|---:|---:|---:|---:|\n'
for r in "${rows[@]}"; do
  cpu=$(field "$r" 2); wall=$(field "$r" 1); count=$(field "$r" 0)
  name=$(awk '{NF-=3; print}' <<<"$r")
  printf '| %s | %s | %.2f | %.2f | %.2f | %.1f× |\n' "$name" "$count" "$cpu" "$wall" \
    "$(echo "$bytes / $cpu / 1000000000" | bc -l)" "$(echo "$cpu / $base" | bc -l)"
done
