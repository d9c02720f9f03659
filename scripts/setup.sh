#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine, as root: OS packages, the venv,
# and the working tree made importable as the collection chaosfleet.stress.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

APT_PACKAGES=(
  stress-ng runc busybox-static openssh-server openssh-client iproute2 procps util-linux
  gcc libc6-dev python3 python3-venv python3-apt
  chromium shellcheck
  qemu-system-x86 linux-image-amd64 cpio kmod
  prometheus sudo
)
# Real container engines for the engine lab (tests/lab/engines.py). Their packages would start a
# daemon with default networking (a bridge, iptables rules): service starts are blocked while they install.
ENGINE_PACKAGES=(docker.io podman)
missing=()
for pkg in "${APT_PACKAGES[@]}" "${ENGINE_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing OS packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # invoke-rc.d and deb-systemd-invoke skip every service start while this exits 101.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
    trap 'rm -f "$guard"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$guard" ]; then
    rm -f "$guard"
    trap - EXIT
  fi
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha
want=$(cat requirements.txt test-requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r test-requirements.txt
  echo "$want" > "$stamp"
fi

# ansible.cfg points collections_path at .collections; link this tree in as chaosfleet.stress.
mkdir -p .collections/ansible_collections/chaosfleet
ln -sfn "$root" .collections/ansible_collections/chaosfleet/stress
