#!/usr/bin/env bash
# Prints anything the lab or the tests created and did not remove (empty output: clean).
shopt -s nullglob
for d in /sys/fs/cgroup/*/cflab-* /sys/fs/cgroup/*/cffleet-* /sys/fs/cgroup/cflab-* /run/cflab-* /run/cffleet-* .lab/vm/cfvm-*; do
  echo "left: $d"
done
for id in $(runc list -q 2>/dev/null); do echo "left runc container: $id"; done
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(cffleet|cflab|cfvm)'); do echo "left netns: $ns"; done
exit 0
