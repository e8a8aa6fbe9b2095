#!/usr/bin/env bash
# checkov (PyPI) on terraform/. Kept out of scripts/test.sh: installing
# checkov pulls ~150 MB of Python packages, too slow for every CI run.
# Every skip is written next to the resource it concerns, with its reason.
#
# Usage: scripts/checkov.sh   (OPENPAY_CHECKOV_VENV overrides the venv)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
venv="${OPENPAY_CHECKOV_VENV:-$HOME/.cache/openpay-checkov-venv}"
pin='checkov==3.3.*'
if [ ! -x "$venv/bin/checkov" ]; then
  echo "==> creating $venv with $pin"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$pin"
fi
# --skip-download: no Prisma Cloud calls; the built-in policies are enough.
exec "$venv/bin/checkov" -d terraform --framework terraform --quiet --compact --skip-download "$@"
