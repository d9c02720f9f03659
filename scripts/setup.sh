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
  mmdebstrap  # the lab agent image from agent/packages.txt (tests/lab/agents.py)
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

# kubernetes.core (the agent role's k8s module, the kubectl connection plugin). Galaxy is not reachable;
# the `ansible` package on PyPI bundles it. Only that collection is unpacked, next to chaosfleet.stress.
K8S_CORE_FROM=ansible==12.3.0
k8s_core=.collections/ansible_collections/kubernetes/core
if [ "$(cat "$k8s_core/.chaosfleet-source" 2>/dev/null)" != "$K8S_CORE_FROM" ]; then
  echo "setup: unpacking kubernetes.core from $K8S_CORE_FROM"
  wheels=.venv/cache/ansible-wheel
  mkdir -p "$wheels"
  if ! ls "$wheels"/ansible-"${K8S_CORE_FROM#ansible==}"-*.whl >/dev/null 2>&1; then
    .venv/bin/pip download -q --no-deps --only-binary=:all: --dest "$wheels" "$K8S_CORE_FROM" 2>&1 \
      | { grep -v '^WARNING: Location' || true; }
  fi
  rm -rf "$k8s_core.new" "$k8s_core"
  .venv/bin/python - "$wheels"/ansible-"${K8S_CORE_FROM#ansible==}"-*.whl "$k8s_core.new" <<'PY'
import os, sys, zipfile
stem = "ansible_collections/kubernetes/core/"
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if name.startswith(stem) and not name.endswith("/"):
            target = os.path.join(sys.argv[2], name[len(stem):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with wheel.open(name) as src, open(target, "wb") as dst:
                dst.write(src.read())
PY
  echo "$K8S_CORE_FROM" > "$k8s_core.new/.chaosfleet-source"
  mv "$k8s_core.new" "$k8s_core"
fi
