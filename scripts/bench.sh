#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other (they measure time and CPU: run them on a quiet machine).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_DEPRECATION_WARNINGS=False
status=0
for bench in benchmarks/bench_*.py; do
  echo "== $bench"
  .venv/bin/python "$bench" || status=1
  echo
done
exit $status
