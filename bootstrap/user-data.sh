#!/bin/bash
# openpay host bootstrap: EC2 user-data for Amazon Linux 2023 (x86_64, aarch64).
#
# This file is a terraform templatefile() template with exactly two variables:
#   repo_url  git URL of the openpay repository cloned onto the host
#   ssh_user  the login user that runs docker (ec2-user on AL2023)
# Shell expansions with braces are escaped for templatefile() by doubling
# their dollar sign; repo_url and ssh_user are the only interpolations.
# Render it exactly as terraform/compute.tf does.
#
# What it does, in order, each step skipped when already done (re-running it
# on the same host is safe and quick):
#   1. dnf install git and docker (AL2023 ships neither in the AMI)
#   2. enable and start docker
#   3. add the SSH user to the docker group (effective at its next login)
#   4. the Docker Compose CLI plugin and buildx >= 0.17.0 (compose build
#      refuses older buildx; AL2023's docker package ships buildx 0.12.1 in
#      /usr/libexec/docker/cli-plugins) from their GitHub release binaries,
#      pinned, for this architecture, each verified against the checksums.txt
#      published with the release AND against a sha256 pinned here, installed
#      into /usr/local/lib/docker/cli-plugins, which the docker CLI searches
#      before /usr/libexec/docker/cli-plugins (docker/cli,
#      cli-plugins/manager/manager_unix.go defaultSystemPluginDirs, walked in
#      order by PluginRunCommand in manager.go: first hit wins)
#   5. clone the repository (or fetch and hard-reset it when present)
#   6. print one success line: "openpay-bootstrap: OK ..."
# All output goes to stdout (cloud-init-output.log) and, timestamped, to
# /var/log/user-data.log. A failing command is logged by the ERR trap as
# "openpay-bootstrap: ERROR: line N: exit S: COMMAND" and the script stops.
#
# Environment overrides, for tests only (the defaults are the real host):
#   OPENPAY_BOOTSTRAP_LOG   log file            (default /var/log/user-data.log)
#   OPENPAY_BOOTSTRAP_ROOT  prefix for every path this script writes (default none)
#   TMPDIR                  where downloads are staged before verification
set -Eeuo pipefail

readonly REPO_URL='${repo_url}'
readonly SSH_USER='${ssh_user}'

# Pinned releases. To bump one: change the version, then replace its two
# sha256 values in pinned_sha256 with values published for that release.
readonly COMPOSE_VERSION=v2.40.3
readonly BUILDX_VERSION=v0.29.1
readonly RELEASES=https://github.com

# The sha256 of each pinned release binary, as published in public sources:
# the docker:29-cli official image's Dockerfile (docker-library, Nov 2025:
# DOCKER_COMPOSE_VERSION=2.40.3, DOCKER_BUILDX_VERSION=0.29.1) and, for
# buildx, cashapp/hermit-packages docker-buildx.hcl. A release whose own
# checksums.txt disagrees with these is refused.
pinned_sha256() {
  case "$1" in
    docker-compose-linux-x86_64) echo dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372 ;;
    docker-compose-linux-aarch64) echo d26373b19e89160546d15407516cc59f453030d9bc5b43ba7faf16f7b4980137 ;;
    buildx-v0.29.1.linux-amd64) echo 7d2d7d6d4680aa349614965aaa33ccec43f1a9a21e908a5ce4cb6adfa5ad5141 ;;
    buildx-v0.29.1.linux-arm64) echo 50e85c4e290b698908421161c1aee069bcc5d4a65b7b7201bfac3a176b223a7e ;;
    *) return 1 ;;
  esac
}

readonly LOG_FILE="$${OPENPAY_BOOTSTRAP_LOG:-/var/log/user-data.log}"
readonly ROOT="$${OPENPAY_BOOTSTRAP_ROOT:-}"
readonly PLUGIN_DIR="$ROOT/usr/local/lib/docker/cli-plugins"
readonly USER_HOME="$ROOT/home/$SSH_USER"
readonly REPO_DIR="$USER_HOME/openpay"

# --- logging ---------------------------------------------------------------

# Prefixes each line with a UTC timestamp (bash's printf %()T: no fork per line).
stamp() {
  export TZ=UTC
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%(%Y-%m-%dT%H:%M:%SZ)T %s\n' -1 "$line"
  done
}

mkdir -p "$(dirname "$LOG_FILE")"
exec > >(stamp | tee -a "$LOG_FILE") 2>&1
log_pid=$!

say() { printf 'openpay-bootstrap: %s\n' "$*"; }
die() {
  say "ERROR: $*"
  exit 1
}

started=$SECONDS
staging=""

on_err() {
  local status=$1 line=$2 cmd=$3
  say "ERROR: line $line: exit $status: $cmd"
}

# Runs last, on success and on failure: drops staged downloads, names the
# log on failure, and waits for the log writer so no line is lost.
on_exit() {
  local status=$?
  trap - ERR
  if [ -n "$staging" ]; then rm -rf "$staging"; fi
  if [ "$status" -ne 0 ]; then
    say "FAILED (exit $status); the lines above say which step; log: $LOG_FILE"
  fi
  exec >&- 2>&-
  wait "$log_pid" || true
  exit "$status"
}

trap 'on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR
trap on_exit EXIT

# --- helpers ---------------------------------------------------------------

sha256_of() {
  local out
  out=$(sha256sum "$1")
  printf '%s\n' "$${out%% *}"
}

# Runs a command as the SSH user, with its own HOME, so the repository it
# clones is owned by (and safe for git to use as) that user.
as_user() {
  runuser -u "$SSH_USER" -- env HOME="$USER_HOME" "$@"
}

# The checksum that a release's checksums.txt gives for one asset. Lines are
# "<sha256> <name>", "<sha256>  <name>" or "<sha256> *<name>" depending on
# the release tooling.
published_sha256() {
  local sums=$1 asset=$2 sum name
  while read -r sum name; do
    name=$${name#\*}
    if [ "$name" = "$asset" ]; then
      printf '%s\n' "$sum"
      return 0
    fi
  done <"$sums"
  return 1
}

# Downloads one release asset into the staging dir and verifies it against
# the release's checksums.txt and the pinned sha256. Never touches the
# plugin dir: installing happens only after every download verified.
fetch_verified() {
  local base=$1 asset=$2 pinned published actual
  pinned=$(pinned_sha256 "$asset") ||
    die "no pinned sha256 for $asset; add the published value to pinned_sha256"
  curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 15 --proto '=https' \
    -o "$staging/$asset.checksums.txt" "$base/checksums.txt"
  curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 15 --proto '=https' \
    -o "$staging/$asset" "$base/$asset"
  published=$(published_sha256 "$staging/$asset.checksums.txt" "$asset") ||
    die "$base/checksums.txt lists no checksum for $asset; refusing to install it"
  if [ "$published" != "$pinned" ]; then
    die "$base/checksums.txt gives $published for $asset but the pinned sha256 is $pinned; refusing to install it"
  fi
  actual=$(sha256_of "$staging/$asset")
  if [ "$actual" != "$published" ]; then
    die "checksum mismatch for $asset: downloaded $actual, checksums.txt says $published; refusing to install it"
  fi
  say "verified $asset (sha256 $actual)"
}

# True when the plugin at $1 is exactly the pinned binary $2.
is_pinned() {
  [ -x "$1" ] && [ "$(sha256_of "$1")" = "$(pinned_sha256 "$2")" ]
}

# --- steps -----------------------------------------------------------------

say "start: repo $REPO_URL, user $SSH_USER, compose $COMPOSE_VERSION, buildx $BUILDX_VERSION"

say "[1/5] packages git and docker"
if rpm -q --quiet git docker; then
  say "git and docker are already installed"
else
  dnf install -y git docker
fi

say "[2/5] docker service"
if systemctl is-enabled --quiet docker && systemctl is-active --quiet docker; then
  say "docker is already enabled and running"
else
  systemctl enable --now docker
fi

say "[3/5] docker group for $SSH_USER"
groups=$(id -nG "$SSH_USER")
if [[ " $groups " == *" docker "* ]]; then
  say "$SSH_USER is already in the docker group"
else
  usermod -aG docker "$SSH_USER"
fi

say "[4/5] docker CLI plugins compose $COMPOSE_VERSION and buildx $BUILDX_VERSION"
arch=$(uname -m)
case "$arch" in
  x86_64) compose_asset=docker-compose-linux-x86_64 buildx_asset=buildx-$BUILDX_VERSION.linux-amd64 ;;
  aarch64) compose_asset=docker-compose-linux-aarch64 buildx_asset=buildx-$BUILDX_VERSION.linux-arm64 ;;
  *) die "unsupported architecture $arch: only x86_64 and aarch64 releases are pinned" ;;
esac
compose_base=$RELEASES/docker/compose/releases/download/$COMPOSE_VERSION
buildx_base=$RELEASES/docker/buildx/releases/download/$BUILDX_VERSION

need=()
if is_pinned "$PLUGIN_DIR/docker-compose" "$compose_asset"; then
  say "docker-compose $COMPOSE_VERSION is already installed in $PLUGIN_DIR"
else
  need+=("$compose_base $compose_asset docker-compose")
fi
if is_pinned "$PLUGIN_DIR/docker-buildx" "$buildx_asset"; then
  say "docker-buildx $BUILDX_VERSION is already installed in $PLUGIN_DIR"
else
  need+=("$buildx_base $buildx_asset docker-buildx")
fi
if [ "$${#need[@]}" -gt 0 ]; then
  staging=$(mktemp -d "$${TMPDIR:-/tmp}/openpay-bootstrap.XXXXXX")
  for item in "$${need[@]}"; do
    read -r base asset _ <<<"$item"
    fetch_verified "$base" "$asset"
  done
  mkdir -p "$PLUGIN_DIR"
  for item in "$${need[@]}"; do
    read -r _ asset plugin <<<"$item"
    # Same-directory rename: a concurrent `docker` never sees half a file.
    install -m 0755 "$staging/$asset" "$PLUGIN_DIR/.$plugin.new"
    mv -f "$PLUGIN_DIR/.$plugin.new" "$PLUGIN_DIR/$plugin"
    say "installed $PLUGIN_DIR/$plugin from $asset"
  done
fi
"$PLUGIN_DIR/docker-compose" version
"$PLUGIN_DIR/docker-buildx" version

say "[5/5] repository $REPO_URL"
mkdir -p "$USER_HOME"
if [ -d "$REPO_DIR/.git" ]; then
  as_user git -C "$REPO_DIR" fetch --prune origin
  as_user git -C "$REPO_DIR" reset --hard origin/HEAD
else
  as_user git clone "$REPO_URL" "$REPO_DIR"
fi
commit=$(as_user git -C "$REPO_DIR" rev-parse --short HEAD)

say "OK: git, docker, compose $COMPOSE_VERSION and buildx $BUILDX_VERSION ready; $REPO_DIR at $commit; took $((SECONDS - started))s"
