#!/usr/bin/env bash
# Prints anything the lab or the tests created and did not remove (empty output: clean).
shopt -s nullglob
for d in /sys/fs/cgroup/*/cflab-* /sys/fs/cgroup/*/cffleet-* /sys/fs/cgroup/cflab-* /run/cflab-* /run/cffleet-* .lab/vm/cfvm-* .lab/cflab-*.data \
         /sys/fs/cgroup/*/cfdock-* /run/cfdock-* .lab/cfdock-*.json \
         /sys/fs/cgroup/*/cfagent-* /run/cfagent-* .lab/cfagent-*.json; do
  echo "left: $d"
done
# The engine lab's containers sit in the engines' own parents, which it removes once empty.
for d in /sys/fs/cgroup/memory/docker /sys/fs/cgroup/memory/libpod_parent; do
  [ -d "$d" ] && echo "left engine cgroup: $d $(find "$d" -mindepth 1 -maxdepth 1 -type d -printf '%f ')"
done
ps -eo pid=,args= | awk '/\/run\/cf(dock|agent)-/ && !/awk/ {print "left engine process: " substr($0, 1, 160)}'
# A lab's dockerd that restarts a starved containerd has it dump its stacks to $TMPDIR (the lab's run dir).
for f in /tmp/containerd.*.stacks.log; do echo "left containerd stack dump: $f"; done
# Stop guards (the experiment role's, plugins/plugin_utils/_stop_guard.py) leave when their experiment ends.
for d in /tmp/chaosfleet-guard-*; do echo "left stop guard dir: $d"; done
# Ansible's controller temp dirs of the processes the tests started (tests/conftest.py).
for d in /tmp/cftest-ansible-local-*; do echo "left Ansible temp dir: $d"; done
ps -eo pid=,args= | awk '/# chaosfleet-stop-guard/ && !/awk/ {print "left stop guard: " substr($0, 1, 160)}'
for id in $(runc list -q 2>/dev/null); do echo "left runc container: $id"; done
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(cffleet|cflab|cfvm)'); do echo "left netns: $ns"; done
exit 0
