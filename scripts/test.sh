#!/usr/bin/env bash
# Every test: unit, integration on the real lab (runc pods, SSH nodes, the cgroup v2 VM), molecule and the
# quality gates, then a check that the lab left nothing behind. The lab is torn down on every exit path.
#
# Phases (tests/README.md):
#   1. unit tests, while the cgroup v2 VM boots and the 3-node SSH fleet comes up in the background: one VM
#      and one fleet for both integration passes (named to pytest in CHAOSFLEET_TEST_VM / CHAOSFLEET_TEST_FLEET)
#   2. serial: the integration tests marked `serial` (time bounds, CPU shares, memory sizes, the kernel's OOM
#      log), one at a time with nothing else running, so that their figures stay honest
#   3. at once: every other integration test on TEST_WORKERS pytest-xdist workers (--dist loadgroup; groups
#      from tests/integration/conftest.py), `molecule test`, and scripts/quality.sh
#
# Usage: scripts/test.sh [all|unit|integration]    TEST_WORKERS (default 3): workers of the parallel pass
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_DEPRECATION_WARNINGS=False
scope=${1:-all}
workers=${TEST_WORKERS:-3}
python=.venv/bin/python

logs=$(mktemp -d /tmp/cftest-logs.XXXXXX)
token=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
vm_name="cfvm-$token" fleet_name="cffleet-${token:0:4}"
shared_up=0

cleanup() {
  # What this script built, by name, then anything a killed test left behind.
  if [ "$shared_up" = 1 ]; then
    $python tests/vm/vm.py down --name "$vm_name" >/dev/null 2>&1 || true
    $python tests/lab/fleet.py down --name "$fleet_name" >/dev/null 2>&1 || true
  fi
  $python tests/lab/lab.py destroy --all >/dev/null 2>&1 || true
  $python tests/lab/fleet.py down --all >/dev/null 2>&1 || true
  $python tests/vm/vm.py down --all >/dev/null 2>&1 || true
}

stop_background() {  # an interrupted run: end the background phases by the PIDs started here, then clean up
  local log
  for log in "${bg_logs[@]}"; do
    [ -f "$log.pid" ] && [ ! -f "$log.rc" ] && kill -TERM "$(cat "$log.pid")" 2>/dev/null
  done
  wait 2>/dev/null
  cleanup
}
bg_pids=() bg_logs=() bg_cmds=()
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

status=0
# Each phase's output is kept so that the end of the run repeats why a phase failed: CI shows
# only the tail of the output.
record() {  # record RC LOG DESCRIPTION: a failed phase's cause goes to the summary
  local rc=$1 log=$2
  shift 2
  if [ "$rc" -ne 0 ]; then
    status=1
    { echo "== failed (exit $rc): $*"
      grep -E '^(FAILED|ERROR) |^E  |fatal: |failed: |"msg": |Assertion failed|CRITICAL|FAILED \(' "$log" | tail -n 40
    } >> "$logs/summary"
  fi
}

run() {  # a phase in the foreground
  echo "== $*"
  local started=$SECONDS log rc
  log=$(mktemp "$logs/phase.XXXXXX")
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  record "$rc" "$log" "$@"
  echo "== $(( SECONDS - started )) s, exit $rc: $*"
  echo "$(( SECONDS - started )) s, exit $rc: $*" >> "$logs/times"
}

start() {  # a phase in the background; `finish` prints its output and records its result
  local log
  log=$(mktemp "$logs/phase.XXXXXX")
  echo "== started: $*"
  ( started=$SECONDS
    "$@" > "$log" 2>&1 &
    echo $! > "$log.pid"
    wait $!
    echo "$? $(( SECONDS - started ))" > "$log.rc" ) &
  bg_pids+=($!)
  bg_logs+=("$log")
  bg_cmds+=("$*")
}

finish() {  # wait for every background phase, in the order they started
  local i rc seconds
  wait "${bg_pids[@]}" 2>/dev/null
  for i in "${!bg_logs[@]}"; do
    echo "== ${bg_cmds[$i]}"
    cat "${bg_logs[$i]}"
    read -r rc seconds < "${bg_logs[$i]}.rc" 2>/dev/null || { rc=1; seconds="?"; }
    record "$rc" "${bg_logs[$i]}" "${bg_cmds[$i]}"
    echo "== $seconds s, exit $rc: ${bg_cmds[$i]}"
    echo "$seconds s, exit $rc: ${bg_cmds[$i]}" >> "$logs/times"
  done
  bg_pids=() bg_logs=() bg_cmds=()
}

# A pass that may select nothing (say, no serial test in a narrowed run): pytest's exit 5 is not a failure.
pytest_pass() {
  $python -m pytest -p no:cacheprovider "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then echo "(no tests selected)"; return 0; fi
  return "$rc"
}

# The VM and the fleet for both integration passes; a failure is a failed phase, and the fixtures then try on
# their own (and say why they cannot).
shared_lab() {
  local vm_pid fleet_pid rc=0
  $python tests/vm/vm.py up --name "$vm_name" --timeout 150 > "$logs/vm.json" &
  vm_pid=$!
  $python tests/lab/fleet.py up --nodes 3 --name "$fleet_name" > "$logs/fleet.path" &
  fleet_pid=$!
  wait "$vm_pid" || { echo "vm.py up failed"; rc=1; }
  wait "$fleet_pid" || { echo "fleet.py up failed"; rc=1; }
  return $rc
}

if [ "$scope" = all ] || [ "$scope" = integration ]; then
  shared_up=1
  start shared_lab
fi
if [ "$scope" = all ] || [ "$scope" = unit ]; then
  run .venv/bin/python -m pytest -q -p no:cacheprovider tests/unit
fi
if [ "$scope" = all ] || [ "$scope" = integration ]; then
  finish
  [ -s "$logs/vm.json" ] && export CHAOSFLEET_TEST_VM="$logs/vm.json"
  [ -s "$logs/fleet.path" ] && export CHAOSFLEET_TEST_FLEET="$(cat "$logs/fleet.path")"
  run pytest_pass -q -m serial --durations=25 tests/integration
  start pytest_pass -q -m "not serial" -n "$workers" --dist loadgroup --no-loadscope-reorder --durations=25 tests/integration
  start molecule test -s default
fi
if [ "$scope" = all ] && [ -x scripts/quality.sh ]; then
  start scripts/quality.sh
fi
finish

cleanup
trap - EXIT
left=$(scripts/leftovers.sh)
if [ -n "$left" ]; then
  echo "== the lab left things behind:"
  echo "$left"
  status=1
fi
echo "== phases ($SECONDS s in all):"
cat "$logs/times" 2>/dev/null
if [ -s "$logs/summary" ]; then
  echo "== why the run failed:"
  cat "$logs/summary"
fi
rm -rf "$logs"
exit $status
