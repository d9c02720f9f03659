#!/usr/bin/env bash
# Build the documentation site into docs/_build/html.
#
# 1. Stage docs/ (Markdown prose) and CHANGELOG.md into docs/_build/src.
# 2. antsibull-docs writes the reference (every module, action and role of chaosfleet.stress)
#    into docs/_build/src/reference from the plugins' own DOCUMENTATION/EXAMPLES/RETURN and the
#    roles' meta/argument_specs.yml. Nothing in the reference is written by hand.
# 3. sphinx-build renders it all, warnings as errors.
#
# Usage: scripts/quality/build_docs.sh [COLLECTIONS_PATH]
#   COLLECTIONS_PATH holds ansible_collections/chaosfleet/stress (default: the working tree's
#   .collections link made by scripts/setup.sh; quality.sh passes the installed tarball).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH=${1:-$root/.collections}

build=$root/docs/_build
rm -rf "$build/src" "$build/html"
mkdir -p "$build/src"
tar -C docs --exclude=./_build --exclude=./conf.py --exclude=./antsibull-docs.cfg -cf - . | tar -C "$build/src" -xf -
# The release notes antsibull-changelog generates (CHANGELOG.md at the top of the repository).
cp CHANGELOG.md "$build/src/changelog.md"

# antsibull-docs only writes into a directory that no one else can write to.
mkdir -m 700 "$build/src/reference"
antsibull-docs --config-file docs/antsibull-docs.cfg collection \
  --use-current --squash-hierarchy --cleanup everything \
  --dest-dir "$build/src/reference" chaosfleet.stress

sphinx-build -q -W --keep-going -b html -c docs "$build/src" "$build/html"
echo "docs: $build/html/index.html"
