"""How long summarize() and the report take on long series (run by `make bench`).

    .venv/bin/python benchmarks/bench_summary.py [--json FILE]

- summarize(): 24 h of 1 Hz samples (86,400), the longest window cgroup_sample accepts.
- stress_report: 3 hosts x 1 h of 1 Hz samples, rendered to HTML, Markdown and JSON
  (lines are thinned to at most 1,500 real samples each).
Prints one line per case and optionally writes the figures as JSON.
"""

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".collections"))

from ansible_collections.chaosfleet.stress.plugins.module_utils._summary import summarize  # noqa: E402
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import run  # noqa: E402

MI = 1024 * 1024


def series(count, t0=1764316800.0):
    out, cpu = [], 0.0
    for k in range(count):
        cpu += 0.3 + (k % 7) * 0.01
        out.append({
            "t": t0 + k, "working_set_bytes": (200 + (k * 13) % 97) * MI, "usage_bytes": (210 + (k * 13) % 97) * MI,
            "rss_bytes": (150 + (k * 13) % 97) * MI, "cache_bytes": 50 * MI, "limit_bytes": 512 * MI,
            "cpu_usage_seconds": cpu, "nr_periods": 10 * k, "nr_throttled": 3 * k, "throttled_seconds": 0.01 * k,
            "oom_kill_count": k // 20000, "psi_memory_some_avg10": (k % 50) / 10.0, "psi_memory_full_avg10": None,
            "psi_cpu_some_avg10": None, "stress_bytes": None if k < 60 else 100 * MI,
        })
    return out


def best_of(repeats, func):
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    day = series(86400)
    summary_seconds = best_of(3, lambda: summarize(day))

    hour = series(3600)
    results = []
    for host in ("node1", "node2", "node3"):
        base = summarize(hour[:60])
        results.append({
            "format_version": 1, "host": host, "experiment": "bench", "samples": hour,
            "target": {"limit_bytes": 512 * MI, "cpu_quota_cores": 1.0},
            "request": {"kind": "memory", "memory_bytes": 100 * MI, "ramp_seconds": 60.0, "workers": 1},
            "started_at": hour[60]["t"], "ended_at": hour[-60]["t"], "status": "finished", "reason": "deadline",
            "baseline": base, "oom_kills": [], "steady_state": {"held": True, "probes": []},
            "recovery": {"recovered": True, "seconds": 3.0, "within_percent": 5.0, "timeout_seconds": 60.0},
        })
    with tempfile.TemporaryDirectory(prefix="cflab-bench-") as dest:
        report_seconds = best_of(3, lambda: run({"results": results, "dest": dest, "title": "bench %f" % time.time()}))
        html_bytes = os.path.getsize(os.path.join(dest, "stress-report-bench.html"))

    figures = {
        "summarize_86400_samples_seconds": round(summary_seconds, 4),
        "report_3_hosts_x_3600_samples_seconds": round(report_seconds, 4),
        "report_html_bytes": html_bytes,
    }
    print("summarize, 86,400 samples:           %.3f s" % summary_seconds)
    print("stress_report, 3 x 3,600 samples:    %.3f s (HTML %d KiB)" % (report_seconds, html_bytes // 1024))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
