#!/usr/bin/env bash
# Benchmark: `openpay doctor` over SSH against 1 host vs N hosts (default 10).
#
# Starts N real sshd instances on loopback ports (throwaway host keys, one
# throwaway user key, the current user), each with stand-in `cloud-init`,
# `git` and `docker` on its session PATH so every tool answers at once and
# the time measured is openpay's: connect, host key check, auth, probes.
# SHLVL=1 keeps Debian's bash from sourcing ~/.bashrc for each command (as
# root on a dev box that can be a slow `pyenv init`, which would make the
# bench measure the servers' CPU, not openpay).
# Runs `openpay doctor --offline --host ...` RUNS times for 1 host and for
# N hosts, prints the median wall time of each and the ratio. Hosts are
# checked in parallel, so the ratio should stay close to 1; on one small
# machine all N servers share its CPUs, which is what pushes it up.
#
# Usage: bench/doctor_ssh.sh            (N=10 RUNS=5 DELAY=0 by default)
#        N=5 RUNS=3 bench/doctor_ssh.sh
#        DELAY=0.5 bench/doctor_ssh.sh  (each stand-in tool takes 0.5 s, like
#                                       a real `docker version` on a busy host)
# Never touches ~/.ssh: openpay runs with HOME pointing at a temp dir.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

N="${N:-10}"
RUNS="${RUNS:-5}"
DELAY="${DELAY:-0}"
SSHD="${OPENPAY_TEST_SSHD:-/usr/sbin/sshd}"
# Same layout as scripts/test.sh: shared compiled deps, this clone's binary.
export CARGO_BUILD_BUILD_DIR="${CARGO_BUILD_BUILD_DIR:-$HOME/.cache/openpay-target}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

[ -x "$SSHD" ] || { echo "error: $SSHD not found; apt-get install openssh-server (scripts/test.sh does)" >&2; exit 1; }
command -v ssh-keygen >/dev/null || { echo "error: ssh-keygen not found; apt-get install openssh-client" >&2; exit 1; }

bin="${OPENPAY_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --quiet --bin openpay
  bin="$CARGO_TARGET_DIR/debug/openpay"
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Stand-in tools: prompt, healthy answers (Amazon Linux 2023 shapes).
mkdir -p "$tmp/bin" "$tmp/home/.ssh"
cat >"$tmp/bin/cloud-init" <<'EOF'
#!/bin/sh
sleep "$OPENPAY_BENCH_DELAY"
case "$*" in
  *--format*) echo "usage: cloud-init status [-h] [-l] [-w]" >&2
              echo "cloud-init status: error: unrecognized arguments: --format json" >&2; exit 2 ;;
  *) printf 'status: done\ntime: Tue, 05 Nov 2024 10:00:00 +0000\ndetail:\nDataSourceEc2Local\n' ;;
esac
EOF
cat >"$tmp/bin/git" <<'EOF'
#!/bin/sh
sleep "$OPENPAY_BENCH_DELAY"
echo "git version 2.40.1"
EOF
cat >"$tmp/bin/docker" <<'EOF'
#!/bin/sh
sleep "$OPENPAY_BENCH_DELAY"
case "$*" in
  --version) echo "Docker version 25.0.8, build 0bab007" ;;
  "version --format"*) echo "25.0.8" ;;
  "compose version"*) echo "Docker Compose version v2.29.7" ;;
  "buildx version"*) echo "github.com/docker/buildx v0.17.1 257815a6fb95ae5db0c3d5a2f6ee4b3b2c3f3b95" ;;
  *) echo "docker stand-in: unexpected: $*" >&2; exit 1 ;;
esac
EOF
chmod +x "$tmp/bin/"*

ssh-keygen -q -t ed25519 -N '' -C '' -f "$tmp/user_key"
user=$(id -un)
mkdir -p /run/sshd 2>/dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ports=()
for i in $(seq 1 "$N"); do
  d="$tmp/sshd$i"
  mkdir -p "$d"
  ssh-keygen -q -t ed25519 -N '' -C '' -f "$d/host_key"
  cp "$tmp/user_key.pub" "$d/authorized_keys"
  port=$(free_port)
  cat >"$d/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PidFile $d/sshd.pid
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
SetEnv SHLVL=1 OPENPAY_BENCH_DELAY=$DELAY PATH=$tmp/bin:/usr/local/bin:/usr/bin:/bin
EOF
  "$SSHD" -D -e -f "$d/sshd_config" 2>"$d/log" &
  pids+=($!)
  ports+=("$port")
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/host_key.pub")" >>"$tmp/home/.ssh/known_hosts"
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
done

run_doctor() { # host count
  local args=()
  for port in "${ports[@]:0:$1}"; do args+=(--host "$user@127.0.0.1:$port"); done
  local rc=0
  local timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f '%U %S' -o "$tmp/cpu.txt")
  (cd "$tmp" && HOME="$tmp/home" "${timer[@]}" "$bin" doctor --offline --format json \
      --identity-file "$tmp/user_key" "${args[@]}" >"$tmp/out.json" 2>"$tmp/err.txt") || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    echo "error: openpay doctor with $1 host(s) exited $rc:" >&2
    cat "$tmp/err.txt" >&2
    exit 1
  fi
}

median_ms() { # host count -> median wall time of RUNS runs, in ms
  local times=()
  run_doctor "$1" # warm-up (page cache, first sshd forks)
  for _ in $(seq 1 "$RUNS"); do
    local t0 t1
    t0=$(date +%s%N)
    run_doctor "$1"
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# time(1) writes "Command exited with non-zero status 1" first when doctor
# exits 1; the times are on the last line.
cpu_ms() { [ -f "$tmp/cpu.txt" ] && tail -n 1 "$tmp/cpu.txt" | awk '{printf "%d", ($1 + $2) * 1000}' || echo "n/a"; }
one=$(median_ms 1)
one_cpu=$(cpu_ms)
many=$(median_ms "$N")
many_cpu=$(cpu_ms)
reachable=$(grep -o '"reachable": *true' "$tmp/out.json" | wc -l)
[ "$reachable" -eq "$N" ] || { echo "error: only $reachable of $N hosts were checked" >&2; exit 1; }
ratio=$(awk -v a="$many" -v b="$one" 'BEGIN {printf "%.2f", a/b}')
printf 'openpay doctor over SSH (loopback sshd, stand-in tools taking %ss, %s runs each, median wall time)\n' "$DELAY" "$RUNS"
printf '  1 host   : %6s ms   (openpay CPU %s ms)\n' "$one" "$one_cpu"
printf '  %-2s hosts : %6s ms   (openpay CPU %s ms)\n' "$N" "$many" "$many_cpu"
printf '  ratio    : %6s  (%s hosts / 1 host; 1.00 = perfectly parallel)\n' "$ratio" "$N"
printf '  machine  : %s CPUs, load %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
