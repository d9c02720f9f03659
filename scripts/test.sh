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
logs=$(mktemp -d /tmp/cftest-logs.XXXXXX)
# Each phase's output is kept so that the end of the run repeats why a phase failed: CI shows
# only the tail of the output.
run() {
  echo "== $*"
  local started=$SECONDS log rc
  log=$(mktemp "$logs/phase.XXXXXX")
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    status=1
    { echo "== failed (exit $rc): $*"
      grep -E '^(FAILED|ERROR) |^E  |fatal: |failed: |"msg": |Assertion failed|CRITICAL' "$log" | tail -n 40
    } >> "$logs/summary"
  fi
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
if [ -s "$logs/summary" ]; then
  echo "== why the run failed:"
  cat "$logs/summary"
fi
rm -rf "$logs"
exit $status
