#!/usr/bin/env bash
# Every test: unit, integration on the real lab (runc pods, SSH nodes, the cgroup v2 VM), molecule and the
# quality gates, then a check that the lab left nothing behind. The lab is torn down on every exit path.
#
# Phases (tests/README.md):
#   1. unit tests, while the cgroup v2 VM boots and the 3-node SSH fleet comes up in the background (named to
#      pytest in CHAOSFLEET_TEST_VM / CHAOSFLEET_TEST_FLEET); with TEST_OVERLAP=1 a second fleet for the
#      background pass comes up too, niced (its weight drops when the serial pass begins)
#   2. serial: the integration tests marked `serial` (time bounds, CPU shares, memory sizes, the kernel's OOM
#      log) and every test on the emulated VM, at normal priority, so that their figures stay honest:
#      2a. those marked `alone` (races on machine-wide kernel state, figures the load average would bend), one
#          at a time with nothing beside them;
#      2b. those marked `vm` (the emulated VM's), one at a time; then the VM goes down;
#      2c. the others, TEST_SERIAL_WORKERS at a time, the tests of one shared resource on one worker.
#      With TEST_SIDE=serial or TEST_OVERLAP=1, beside 2b and 2c at the background's priority (nice 19, idle
#      I/O class, and cpu.shares TEST_BG_SHARES through the guard below): `molecule test` and
#      scripts/quality.sh, and with TEST_OVERLAP=1 also the parallel pass on its own fleet
#   3. parallel (TEST_OVERLAP=0): every other integration test on TEST_WORKERS pytest-xdist workers (--dist
#      loadgroup; groups from tests/integration/conftest.py), with molecule and quality.sh beside it unless
#      TEST_SIDE=serial.
#
# Usage: scripts/test.sh [all|unit|integration]
#   TEST_WORKERS  (default 3) workers of the parallel pass
#   TEST_SERIAL_WORKERS (default 2) pytest-xdist workers of part 2c (1: one test at a time)
#   TEST_OVERLAP  (default 1) the parallel pass runs beside the serial pass's parts 2b and 2c, on a second fleet; 0:
#                 after it, at normal priority, on the same fleet (tests/README.md has both layouts' figures)
#   TEST_SIDE     (default parallel) where molecule and quality.sh run without overlap: beside the parallel
#                 pass, or beside parts 2b and 2c at the background's priority (`serial`)
#   TEST_SELECT   a pytest -k expression for both integration passes (a narrow run)
#   TEST_BG_SHARES (default 15, the weight of a nice-19 process) cpu.shares of each background cgroup while
#                 the serial pass runs (2: the least)
#   TEST_SWEEP    (default 1) 0: tear down only what this run built by name, no `--all` sweep of the lab
#                 tools (a machine others run labs on); leftovers are then what appeared during the run
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_DEPRECATION_WARNINGS=False
scope=${1:-all}
workers=${TEST_WORKERS:-3}
serial_workers=${TEST_SERIAL_WORKERS:-2}
overlap=${TEST_OVERLAP:-1}
side=${TEST_SIDE:-parallel}
sweep=${TEST_SWEEP:-1}
bg_shares=${TEST_BG_SHARES:-15}
select=()
[ -n "${TEST_SELECT:-}" ] && select=(-k "$TEST_SELECT")
python=.venv/bin/python

logs=$(mktemp -d /tmp/cftest-logs.XXXXXX)
token=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
vm_name="cfvm-$token" fleet_name="cffleet-${token:0:4}"
# The background pass's own fleet (TEST_OVERLAP=1): no node of the serial pass is shared. It needs no VM: every
# VM test is serial (tests/integration/conftest.py marks them `vm`).
bg_fleet_name=$fleet_name
while [ "$bg_fleet_name" = "$fleet_name" ]; do
  bg_fleet_name="cffleet-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
done
shared_up=0 bg_lab_pid="" guard_pid="" bg_procs=""
[ "$sweep" = 0 ] && scripts/leftovers.sh > "$logs/leftovers.before"

cleanup() {
  # What this script built, by name, then anything a killed test left behind.
  if [ "$shared_up" = 1 ]; then
    $python tests/vm/vm.py down --name "$vm_name" >/dev/null 2>&1 || true
    $python tests/lab/fleet.py down --name "$fleet_name" >/dev/null 2>&1 || true
  fi
  if [ -n "$bg_lab_pid" ]; then
    $python tests/lab/fleet.py down --name "$bg_fleet_name" >/dev/null 2>&1 || true
  fi
  if [ "$sweep" != 0 ]; then
    $python tests/lab/lab.py destroy --all >/dev/null 2>&1 || true
    $python tests/lab/fleet.py down --all >/dev/null 2>&1 || true
    $python tests/vm/vm.py down --all >/dev/null 2>&1 || true
    # A pytest killed mid-run (make test interrupted) skips its fixtures' teardown: the engine and agent labs too.
    $python tests/lab/engines.py down --all >/dev/null 2>&1 || true
    $python tests/lab/agents.py down --all >/dev/null 2>&1 || true
  fi
  stop_guard
}

ended() {  # ended PID...: TERM each that still runs, and its children (a shell function's commands)
  local pid
  for pid in "$@"; do
    pkill -TERM -P "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
  done
}

stop_background() {  # an interrupted run: end the background phases by the PIDs started here, then clean up
  local log pids=()
  for log in "${bg_logs[@]}"; do
    [ -f "$log.pid" ] && [ ! -f "$log.rc" ] && pids+=("$(cat "$log.pid")")
  done
  [ -n "$bg_lab_pid" ] && pids+=("$bg_lab_pid")
  [ ${#pids[@]} -gt 0 ] && ended "${pids[@]}"
  wait "${bg_pids[@]}" ${bg_lab_pid:+"$bg_lab_pid"} 2>/dev/null
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

# The VM and the fleet for an integration pass (the serial pass's, or with a suffix the background pass's
# fleet alone); a failure is a failed phase, and the fixtures then try on their own (and say why they cannot).
shared_lab() {  # shared_lab VM FLEET VM_TIMEOUT SUFFIX (VM "": a fleet alone)
  local vm_pid="" fleet_pid rc=0
  if [ -n "$1" ]; then
    $python tests/vm/vm.py up --name "$1" --timeout "$3" > "$logs/vm$4.json" &
    vm_pid=$!
  fi
  $python tests/lab/fleet.py up --nodes 3 --name "$2" > "$logs/fleet$4.path" &
  fleet_pid=$!
  [ -z "$vm_pid" ] || wait "$vm_pid" || { echo "vm.py up $1 failed"; rc=1; }
  wait "$fleet_pid" || { echo "fleet.py up $2 failed"; rc=1; }
  return $rc
}

# The background's priority. Nice 19 orders processes only within one cpu cgroup and one session (autogroup),
# and the lab tools put fleet nodes, pods and engines in cgroups of their own at the top of the cpu hierarchy:
# the guard (guard.py below) gives them, and the background's own cgroup, cpu.shares 2 (tests/README.md).
write_guard() {  # guard.py NAME PIN READY_FILE SHARES, until SIGTERM:
  # - the cpu cgroup /NAME for the background's own processes (pytest, ansible, molecule, quality.sh),
  #   whatever their session; from SIGUSR1 on (phase 2) its cpu.shares are SHARES, and
  # - every other cpu cgroup whose processes all run at nice 19 (the background's fleet nodes, pods, engine
  #   daemons and containers) gets cpu.shares SHARES too, checked twice a second; its own value comes back when
  #   a process at another nice level joins it, and at the end;
  # - PIN=1: an empty NAME-pin in /docker and /libpod_parent in every hierarchy, so that no engine lab's
  #   teardown removes those shared parents while the other pass's engine starts a container in them.
  cat <<'PY'
import errno, os, signal, sys, time

NAME, PIN, READY, LOW = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]


def mounts():
    found = {}
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields, kind = left.split(), right.split()
            if len(kind) >= 3 and kind[0] in ("cgroup", "cgroup2") and fields[3] == "/":
                found.setdefault(fields[4], set(kind[2].split(",")) if kind[0] == "cgroup" else {"unified"})
    return found


def write(path, value):
    with open(path, "w") as handle:
        handle.write(value)


def read(path):
    with open(path) as handle:
        return handle.read().strip()


HIERARCHIES = mounts()
CPU = next((m for m, opts in HIERARCHIES.items() if "cpu" in opts), None)
if CPU is None:
    sys.exit("guard: no cgroup v1 cpu hierarchy here")
BG = os.path.join(CPU, NAME)
PINS = [os.path.join(m, parent.strip("/"), NAME + "-pin") for m in HIERARCHIES
        for parent in ("docker", "libpod_parent")] if PIN else []
demoted = {}  # cgroup dir -> its own cpu.shares


def nice(pid):
    try:
        stat = read("/proc/%s/stat" % pid)
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[16])


def summary(directory):
    """(has processes, all of them at nice 19, children) of a cgroup and everything under it."""
    some, niced, children = False, True, []
    try:
        pids = read(os.path.join(directory, "cgroup.procs")).split()
        entries = [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return False, True, []
    for pid in pids:
        level = nice(pid)
        if level is not None:
            some, niced = True, niced and level >= 19
    for entry in entries:
        if entry in PINS:
            continue
        child = summary(entry)
        children.append((entry, child))
        if child[0]:
            some, niced = True, niced and child[1]
    return some, niced, children


def settle(directory, node):
    """Low shares for a cgroup whose processes all run at nice 19, its own back once another one joins."""
    some, niced, children = node
    try:
        if some and niced:
            if directory not in demoted:
                demoted[directory] = read(os.path.join(directory, "cpu.shares"))
                write(os.path.join(directory, "cpu.shares"), LOW)
            return
        if directory in demoted:
            write(os.path.join(directory, "cpu.shares"), demoted.pop(directory))
    except OSError:
        demoted.pop(directory, None)  # removed meanwhile
    for entry, child in children:
        settle(entry, child)


SHARED = {os.path.join(CPU, "docker"), os.path.join(CPU, "libpod_parent")}  # both passes' containers
decided = {}  # top-level cgroup -> True (demoted) or False (a process at another nice level was in it)


def tick():
    """Each top-level cgroup is decided once, when it first has processes (a lab's, a node's, an engine's
    processes all come from one side); the engines' shared parents are looked at every time, deep."""
    present = {e.path for e in os.scandir(CPU) if e.is_dir(follow_symlinks=False)} - {BG}
    for gone in set(decided) - present:
        del decided[gone]
        demoted.pop(gone, None)
    for directory in sorted(present - set(decided)):
        node = summary(directory)
        if directory in SHARED:
            settle(directory, node)
        elif node[0]:
            settle(directory, node)
            decided[directory] = node[1]


stopping, active = [], []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
signal.signal(signal.SIGUSR1, lambda *_: active.append(1))
os.mkdir(BG)
for pin in PINS:
    os.makedirs(pin, exist_ok=True)
write(READY, BG + "/cgroup.procs\n")
while not stopping:
    if active:
        if active[0]:
            write(os.path.join(BG, "cpu.shares"), LOW)
            active[:] = [0]
        tick()
    time.sleep(0.5)

for directory, shares in demoted.items():
    try:
        write(os.path.join(directory, "cpu.shares"), shares)
    except OSError:
        pass
for pin in PINS:
    for path in (pin, os.path.dirname(pin)):  # the parent as an engine lab's teardown would: once empty
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                print("guard: %s: %s" % (path, exc), file=sys.stderr)
deadline = time.monotonic() + 20
while True:
    try:
        os.rmdir(BG)
        break
    except FileNotFoundError:
        break
    except OSError:
        if time.monotonic() > deadline:
            print("left: %s (processes %s)" % (BG, read(BG + "/cgroup.procs").split()))
            sys.exit(1)
        time.sleep(0.2)
PY
}

start_guard() {  # start_guard PIN: PIN=1 also keeps /docker and /libpod_parent while both passes use engines
  write_guard > "$logs/guard.py"
  $python "$logs/guard.py" "cftest-$token-bg" "$1" "$logs/guard.ready" "$bg_shares" > "$logs/guard.out" 2>&1 &
  guard_pid=$!
  local i
  for i in $(seq 100); do
    [ -s "$logs/guard.ready" ] && break
    kill -0 "$guard_pid" 2>/dev/null || break
    sleep 0.1
  done
  bg_procs=$(cat "$logs/guard.ready" 2>/dev/null)
  [ -n "$bg_procs" ] || { echo "== no CPU guard for the background: $(cat "$logs/guard.out")"; status=1; }
}

guard_on() {  # the serial pass begins: from now on the background yields
  [ -n "$guard_pid" ] && kill -USR1 "$guard_pid"
}

stop_guard() {  # after the background's processes: shares back, pins and the background's cgroup removed
  [ -n "$guard_pid" ] || return 0
  kill -TERM "$guard_pid" 2>/dev/null
  wait "$guard_pid" 2>/dev/null || { echo "== the CPU guard:"; cat "$logs/guard.out"; status=1; }
  guard_pid="" bg_procs=""
}

background() {  # background COMMAND...: at the background's priority, without the serial pass's VM and fleet
  [ -n "$bg_procs" ] && echo "$BASHPID" > "$bg_procs"
  renice -n 19 -p "$BASHPID" >/dev/null
  ionice -c 3 -p "$BASHPID"
  unset CHAOSFLEET_TEST_VM CHAOSFLEET_TEST_FLEET
  "$@"
}

agent_image() {  # the agent image's root filesystem, built once per machine: never by a background process
  # that the serial pass would then wait for (its build lock) at the background's priority
  $python -c 'import sys; sys.path.insert(0, "tests/lab"); import agents; print(agents.build_rootfs_tar()[0])' \
    || echo "(not built here: the agent fixtures say why)"
}

background_pass() {  # the parallel pass beside the serial one, on the fleet booted for it
  local rc lab_rc lab_seconds
  while [ ! -f "$logs/bg-lab.rc" ]; do sleep 1; done
  read -r lab_rc lab_seconds < "$logs/bg-lab.rc"
  echo "== its fleet: $lab_seconds s, exit $lab_rc"
  echo "$lab_seconds s, exit $lab_rc: the background pass's fleet" >> "$logs/times"
  cat "$logs/bg-lab.log"
  [ -s "$logs/fleet-bg.path" ] && { CHAOSFLEET_TEST_FLEET=$(cat "$logs/fleet-bg.path"); export CHAOSFLEET_TEST_FLEET; }
  echo "== the background pass: CHAOSFLEET_TEST_VM=${CHAOSFLEET_TEST_VM:-} CHAOSFLEET_TEST_FLEET=${CHAOSFLEET_TEST_FLEET:-}"
  pytest_pass -q -m "not serial" -n "$workers" --dist loadgroup --no-loadscope-reorder --durations=25 \
    "${select[@]}" tests/integration
  rc=$?
  [ "$lab_rc" = 0 ] || rc=1
  return "$rc"
}

integration=0
{ [ "$scope" = all ] || [ "$scope" = integration ]; } && integration=1
quality=0
[ "$scope" = all ] && [ -x scripts/quality.sh ] && quality=1
[ "$overlap" = 1 ] && [ "$integration" = 0 ] && overlap=0
beside_serial=0  # molecule and quality.sh beside the serial pass
{ [ "$overlap" = 1 ] || [ "$side" = serial ]; } && [ "$integration" = 1 ] && beside_serial=1

if [ "$integration" = 1 ]; then
  shared_up=1
  start shared_lab "$vm_name" "$fleet_name" 150 ""
fi
if [ "$overlap" = 1 ]; then
  start_guard 1
  # Niced, in the background's cgroup (at full weight until the serial pass begins); no phase but the
  # background pass waits for it.
  ( started=$SECONDS
    background shared_lab "" "$bg_fleet_name" 600 -bg > "$logs/bg-lab.log" 2>&1
    echo "$? $(( SECONDS - started ))" > "$logs/bg-lab.rc" ) &
  bg_lab_pid=$!
  start agent_image
fi
if [ "$scope" = all ] || [ "$scope" = unit ]; then
  # Two workers: the unit tests take half the time while the VM boots and the fleets come up.
  run .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 tests/unit
fi
if [ "$integration" = 1 ]; then
  finish
  [ -s "$logs/vm.json" ] && export CHAOSFLEET_TEST_VM="$logs/vm.json"
  [ -s "$logs/fleet.path" ] && export CHAOSFLEET_TEST_FLEET="$(cat "$logs/fleet.path")"
  echo "== the serial pass: CHAOSFLEET_TEST_VM=${CHAOSFLEET_TEST_VM:-} CHAOSFLEET_TEST_FLEET=${CHAOSFLEET_TEST_FLEET:-}"
  # 2a. The tests marked `alone` (races on machine-wide kernel state, figures a neighbour or the load average
  # would bend), with nothing beside them.
  run pytest_pass -q -m "serial and alone" --durations=10 "${select[@]}" tests/integration
  # From here on, the background beside the serial pass.
  if [ "$beside_serial" = 1 ]; then
    [ -n "$guard_pid" ] || start_guard 0
    guard_on
    [ "$overlap" = 1 ] && start background background_pass
    start background molecule test -s default
    [ "$quality" = 1 ] && start background scripts/quality.sh
  fi
  # 2b. The emulated VM's tests, one at a time (the guest needs a core of its own); the VM then goes down (no
  # other test uses it).
  run pytest_pass -q -m "serial and vm and not alone" --durations=10 "${select[@]}" tests/integration
  $python tests/vm/vm.py down --name "$vm_name" >/dev/null 2>&1
  unset CHAOSFLEET_TEST_VM
  # 2c. The other serial tests, TEST_SERIAL_WORKERS at a time (the tests of one shared resource on one worker).
  side_by_side=()
  [ "$serial_workers" -gt 1 ] && side_by_side=(-n "$serial_workers" --dist loadgroup --no-loadscope-reorder)
  run pytest_pass -q -m "serial and not alone and not vm" "${side_by_side[@]}" --durations=25 "${select[@]}" \
    tests/integration
  if [ "$overlap" = 1 ]; then  # the serial pass's fleet is done (cleanup repeats it): CPU for the rest
    $python tests/lab/fleet.py down --name "$fleet_name" >/dev/null 2>&1
  else
    if [ "$beside_serial" = 1 ]; then
      finish
      stop_guard
      run pytest_pass -q -m "not serial" -n "$workers" --dist loadgroup --no-loadscope-reorder --durations=25 \
        "${select[@]}" tests/integration
    else
      start pytest_pass -q -m "not serial" -n "$workers" --dist loadgroup --no-loadscope-reorder --durations=25 \
        "${select[@]}" tests/integration
      start molecule test -s default
    fi
  fi
fi
if [ "$quality" = 1 ] && [ "$beside_serial" = 0 ]; then
  start scripts/quality.sh
fi
finish

cleanup
trap - EXIT
left=$(scripts/leftovers.sh)
if [ "$sweep" = 0 ]; then  # only what appeared during the run (others' labs on this machine are theirs)
  left=$(comm -13 <(sort "$logs/leftovers.before") <(sort <<< "$left"))
fi
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
