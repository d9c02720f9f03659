"""Benchmark: time for `vm.py up` to a VM with SSH and its lab ready (target: under 60 s).

Run as root: python3 tests/vm/bench_boot.py [--runs 1]. Boots and removes one VM per run.
Prints a JSON line per run and exits 1 when a run misses the target.
"""

import argparse
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

VM_SCRIPT = Path(__file__).resolve().parents[1] / "tests" / "vm" / "vm.py"
TARGET_SECONDS = 60.0


def boot_once():
    name = "cfvm-b" + secrets.token_hex(3)
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, str(VM_SCRIPT), "up", "--name", name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=300, check=False)
        wall = time.monotonic() - started
        if result.returncode != 0:
            return {"name": name, "ok": False, "wall_seconds": round(wall, 1),
                    "error": result.stderr.strip()[-2000:]}
        summary = json.loads(result.stdout)
        return {"name": name, "ok": wall < TARGET_SECONDS, "wall_seconds": round(wall, 1),
                "boot_seconds": summary["boot_seconds"], "kernel": summary["kernel"]}
    finally:
        subprocess.run([sys.executable, str(VM_SCRIPT), "down", "--name", name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    ok = True
    for _run in range(args.runs):
        result = boot_once()
        print(json.dumps(result), flush=True)
        ok = ok and result["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
