#!/usr/bin/env bash
# System packages shuyu needs on Debian: bubblewrap (local sandbox), docker.io (Docker backend),
# debootstrap (builds the job runtime without a registry), postgresql (store tests),
# python3-venv. Idempotent: installs only what is missing.
set -euo pipefail
PACKAGES=(bubblewrap docker.io debootstrap postgresql python3-venv ca-certificates util-linux iproute2 procps chromium fonts-wqy-microhei)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing system packages: ${missing[*]} (fix: run as root, or: sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
