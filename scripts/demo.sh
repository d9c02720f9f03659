#!/usr/bin/env bash
# `make demo`: build the lab, run the seed's story on it, write the report, tear the lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_DEPRECATION_WARNINGS=False
prefix="cflab-demo$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
teardown() {
  .venv/bin/python tests/lab/lab.py destroy --prefix "$prefix" >/dev/null 2>&1 || true
  rm -rf "/run/$prefix-experiments"
}
trap teardown EXIT
state=$(.venv/bin/python tests/lab/lab.py create --prefix "$prefix")
mkdir -p reports
.venv/bin/ansible-playbook -i demo/inventory.ini demo/seed_story.yml \
  -e "lab_state=$state" -e "report_dir=$PWD/reports"
echo "The report of the demo experiment is in $PWD/reports/"
