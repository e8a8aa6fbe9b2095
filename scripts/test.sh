#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need
# (sshd, shellcheck, docker-compose, a venv with moto[server], a terraform
# CLI config pointing at the local provider mirror, the SARIF Multitool
# from npm), checks formatting and
# lints, then runs every test. Servers (moto_server, sshd, the CMS fixture)
# are started by the tests themselves, one per test, on free loopback ports.
#
# Usage: scripts/test.sh [extra nextest args, e.g. a test name filter]
#   OPENPAY_TEST_LINT=0  skip cargo fmt/clippy (quick local iterations)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)

# Compiled dependencies (the AWS SDK takes ~10 minutes on 2 cores) live
# outside the clone and survive between CI runs; final binaries stay in the
# clone's own target/, so two checkouts never run each other's binary.
export CARGO_BUILD_BUILD_DIR="${CARGO_BUILD_BUILD_DIR:-$HOME/.cache/openpay-target}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# Cargo judges openpay's own crate fresh by comparing this checkout's file
# times with the last build in the shared build dir, whichever checkout
# made it: after another checkout built there, a stale binary would pass as
# fresh. Then make this checkout's sources newer (only openpay's crate
# rebuilds; the dependencies stay cached).
mkdir -p "$CARGO_BUILD_BUILD_DIR"
last_checkout="$CARGO_BUILD_BUILD_DIR/.openpay-last-checkout"
if [ "$(cat "$last_checkout" 2>/dev/null)" != "$root" ]; then
  find src tests checks crates -type f -exec touch {} +
fi
printf '%s\n' "$root" >"$last_checkout"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '==> %s\n' "$*"; }

# 1. System packages the tests drive for real.
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: need root to apt-get install ${missing[*]}; install them and rerun" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export OPENPAY_TEST_SSHD=/usr/sbin/sshd

# 2. moto_server (S3, IAM, STS, EC2) in a git-ignored venv.
venv="${OPENPAY_VENV:-$root/.venv}"
# awscrt: without it moto labels a CRC32 as the objects' CRC64/NVME, and
# the runs compare streamed objects by that checksum.
# jsonschema: checks every SARIF document against the official schema.
moto_pins=('moto[server]==5.2.5' 'awscrt==0.38.1' 'jsonschema==4.26.0')
if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c 'import moto, flask, awscrt, jsonschema' 2>/dev/null; then
  step "creating $venv with ${moto_pins[*]}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${moto_pins[@]}"
fi
export OPENPAY_TEST_MOTO_SERVER="$venv/bin/moto_server"
# The record-count tests check openpay against Python's csv module.
export OPENPAY_TEST_PYTHON="$venv/bin/python"

# 2b. Apache Airflow 3 (pinned, with the standard provider) in a venv of its
# own, for the DAG tests (tests/it/airflow.rs). Rebuilt when the pins change.
af_venv="${OPENPAY_AIRFLOW_VENV:-$root/.venv-airflow}"
af_reqs="$root/orchestration/airflow/requirements.txt"
if [ ! -x "$af_venv/bin/airflow" ] || ! cmp -s "$af_reqs" "$af_venv/openpay-requirements.txt"; then
  step "creating $af_venv with $(grep -E '^apache-airflow(-providers-standard)?==' "$af_reqs" | tr '\n' ' ')"
  python3 -m venv "$af_venv"
  "$af_venv/bin/pip" install -q --disable-pip-version-check -r "$af_reqs"
  cp "$af_reqs" "$af_venv/openpay-requirements.txt"
fi
export OPENPAY_TEST_AIRFLOW_VENV="$af_venv"

# 3. terraform with the hashicorp/aws provider from the local mirror.
tmp="$root/.test-tmp"
mkdir -p "$tmp"
if command -v terraform >/dev/null; then
  mirror="${OPENPAY_TF_MIRROR:-}"
  if [ -z "$mirror" ]; then
    hit=$(find / -maxdepth 5 -type d -name registry.terraform.io -not -path '*/.terraform/*' 2>/dev/null | head -n 1 || true)
    [ -n "$hit" ] && mirror=$(dirname "$hit")
  fi
  if [ -n "$mirror" ]; then
    cat >"$tmp/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
RC
    export TF_CLI_CONFIG_FILE="$tmp/terraformrc"
    export OPENPAY_TEST_TF_MIRROR="$mirror"
  fi
fi
# Tests that need terraform fail loudly (not skip) when these are unset.

# 3b. Microsoft's SARIF Multitool from npm: the validator every
# `--format sarif` test runs (SARIF 2.1.0 schema and GitHub's rules). The
# npm package ships a self-contained binary per platform; npm >= 11 does
# not run its chmod postinstall, so the bit is set here.
sarif_pin='@microsoft/sarif-multitool@5.7.0'
sarif_dir="${OPENPAY_SARIF_DIR:-$tmp/sarif-multitool}"
sarif_bin="$sarif_dir/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
if [ ! -f "$sarif_bin" ]; then
  if ! command -v npm >/dev/null; then
    echo "error: npm (Node.js >= 18) is needed to install $sarif_pin for the SARIF tests; install Node.js and rerun" >&2
    exit 1
  fi
  step "installing $sarif_pin into $sarif_dir"
  mkdir -p "$sarif_dir"
  npm install --prefix "$sarif_dir" --no-audit --no-fund --loglevel=error "$sarif_pin" >/dev/null
fi
chmod u+x "$sarif_bin"
export OPENPAY_TEST_SARIF_MULTITOOL="$sarif_bin"

# 4. Lints, then the tests.
if [ "${OPENPAY_TEST_LINT:-1}" != 0 ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy -D warnings"
  cargo clippy --all-targets --quiet -- -D warnings
fi

step "cargo nextest run"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
step "done in $(( $(date +%s) - started ))s"
