#!/bin/bash
# PLACEHOLDER from branch `tf` so terraform validate/apply have a file to
# render; branch `bootstrap` owns the real script (same two template
# variables: repo_url, ssh_user). Rendered by terraform's templatefile, so a
# literal dollar-brace must be written as $${...}.
set -euo pipefail
exec > >(tee -a /var/log/user-data.log) 2>&1
echo "openpay bootstrap: cloning ${repo_url} for ${ssh_user}"
dnf install -y git
sudo -u ${ssh_user} git clone ${repo_url} /home/${ssh_user}/openpay
