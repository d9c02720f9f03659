#!/usr/bin/env bash
# Every test: unit, integration on the real lab (runc pods, SSH nodes, the cgroup v2 VM), then a
# check that the lab left nothing behind. The lab is torn down on every exit path.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_DEPRECATION_WARNINGS=False
scope=${1:-all}

cleanup() {
  .venv/bin/python tests/lab/lab.py destroy --all >/dev/null 2>&1 || true
  [ -x tests/lab/fleet.py ] || [ -f tests/lab/fleet.py ] && .venv/bin/python tests/lab/fleet.py down --all >/dev/null 2>&1 || true
  [ -f tests/vm/vm.py ] && .venv/bin/python tests/vm/vm.py down --all >/dev/null 2>&1 || true
}
trap cleanup EXIT

status=0
run() {
  echo "== $*"
  local started=$SECONDS
  "$@" || status=1
  echo "== $(( SECONDS - started )) s: $*"
}

if [ "$scope" = all ] || [ "$scope" = unit ]; then
  run .venv/bin/python -m pytest -q -p no:cacheprovider tests/unit
fi
if [ "$scope" = all ] || [ "$scope" = integration ]; then
  run .venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 tests/integration
  run molecule test -s default
fi
if [ "$scope" = all ] && [ -x scripts/quality.sh ]; then
  run scripts/quality.sh
fi

cleanup
trap - EXIT
left=$(scripts/leftovers.sh)
if [ -n "$left" ]; then
  echo "== the lab left things behind:"
  echo "$left"
  status=1
fi
exit $status
