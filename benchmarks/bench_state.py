#!/usr/bin/env python3
"""The node state stays cheap over a long run (issue 11, point 10).

1. samples.jsonl: a day at 100 ms through the capped SampleLog stays under its cap (4 MiB) and still
   covers the whole day.
2. A heartbeat's read of the latest sample costs the same on a day of samples as on one line (target:
   < 5 ms), where reading the whole file took seconds.
Writes only under a temporary directory it removes.
"""

import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".collections"))

from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state  # noqa: E402

# The keys of a real sample (cgroup v1), with typical values.
SAMPLE = {"t": 1795959179.37, "working_set_bytes": 123456789, "usage_bytes": 134217728, "cpu_cores": 0.2512,
          "cpu_usage_ns": 123456789012, "throttled_periods": 1234, "throttled_ns": 123456789, "nr_periods": 4567,
          "oom_kill_count": 0, "memory_limit_bytes": 524288000, "psi_memory_some_avg10": 0.0,
          "stress_bytes": 209715200, "cache_bytes": 1234567, "rss_bytes": 122222222, "swap_bytes": 0, "pids": 7}


def main():
    work = tempfile.mkdtemp(prefix="cfbench-state-")
    try:
        capped = os.path.join(work, "capped.jsonl")
        log = state.SampleLog(capped)
        count = 86400 * 10
        started = time.time()
        for index in range(count):
            log.append(dict(SAMPLE, t=index / 10.0))
        size = os.path.getsize(capped)
        with open(capped) as handle:
            first, last = json.loads(handle.readline())["t"], state.read_last_jsonl(capped)["t"]
        print("a day at 100 ms: %d samples -> %.2f MiB on disk (cap %.0f MiB), every %d-th kept, %.1f s to write"
              % (count, size / 1048576.0, state.SAMPLES_MAX_BYTES / 1048576.0, log.stride, time.time() - started))
        print("covers %.0f s to %.0f s of the day -> %s" % (
            first, last, "met" if size <= state.SAMPLES_MAX_BYTES and last >= 86400 - log.stride / 10.0 else "NOT met"))
        full = os.path.join(work, "full.jsonl")
        line = json.dumps(SAMPLE, sort_keys=True) + "\n"
        with open(full, "w") as handle:
            handle.write(line * 86400)
        started = time.time()
        state.read_jsonl(full)
        whole = time.time() - started
        started = time.time()
        for _ in range(100):
            state.read_last_jsonl(full)
        tail = (time.time() - started) / 100
        print("latest sample of an uncapped day at 1 s (%.1f MB): whole file %.3f s, tail %.2f ms -> %s" % (
            os.path.getsize(full) / 1e6, whole, tail * 1000, "met" if tail < 0.005 else "NOT met"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
