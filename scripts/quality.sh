#!/usr/bin/env bash
# shellcheck disable=SC2317  # the steps are functions run through run_step
# Collection quality gates, run by scripts/test.sh as part of `make test`:
#   1. build      ansible-galaxy collection build (the artifact the other steps check)
#   2. sanity     ansible-test sanity on that artifact, unpacked under ansible_collections/chaosfleet/stress,
#                 each test in its own venv (--venv, no Docker), Python 3.11, empty ignore files
#   3. node38     vermin: node-side modules and module_utils need nothing newer than Python 3.8
#   4. lint       ansible-lint --profile production at the repository root (as users run it; .ansible-lint
#                 holds the settings), with awx.awx unpacked from the `ansible` wheel on PyPI into a throwaway path
#   5. awx        ansible-playbook --syntax-check awx/configure.yml
#   6. changelog  antsibull-changelog lint
#   7. ee         ansible-builder introspect of the installed collection (meta/execution-environment.yml)
#                 and ansible-builder create of awx/execution-environment.yml (no image is built here)
#   8. docs       scripts/quality/build_docs.sh: antsibull-docs reference + Sphinx, warnings are errors
# The build/install/ansible-doc checks and the AWX survey checks are pytest tests in tests/integration.
#
# Usage: scripts/quality.sh [STEP...]   (default: all steps)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_DEPRECATION_WARNINGS=False ANSIBLE_NOCOLOR=1 PY_COLORS=0 NO_COLOR=1
sanity_python=${SANITY_PYTHON:-3.11}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(build sanity node38 lint awx changelog ee docs)

work=$(mktemp -d /tmp/cf-quality.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0

want() { [[ " ${steps[*]} " == *" $1 "* ]]; }

run_step() {
  local name=$1 started=$SECONDS
  shift
  echo "== quality: $name"
  if "$@"; then
    echo "== quality: $name passed ($((SECONDS - started))s)"
  else
    echo "== quality: $name FAILED ($((SECONDS - started))s)"
    status=1
  fi
}

tarball=""
build() {
  ansible-galaxy collection build --force --output-path "$work/dist" . >/dev/null || return 1
  tarball=$(ls "$work"/dist/chaosfleet-stress-*.tar.gz)
  echo "built $(basename "$tarball")"
}

# ansible-test bootstraps pip into each sanity venv with a get-pip.py it downloads from a host that
# is not reachable here; it uses a cached copy when there is one. Put our stand-in there, with the
# pinned pip wheel from PyPI beside it.
prepare_pip_bootstrap() {
  local version cache
  version=$(python - "$sanity_python" <<'PY'
import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))['pip'])
PY
) || return 1
  cache=$HOME/.ansible/test/cache
  mkdir -p "$cache"
  if [ ! -f "$cache/pip-$version-py3-none-any.whl" ]; then
    pip download --quiet --no-deps --only-binary=:all: --dest "$cache" "pip==$version" 2>&1 | grep -v '^WARNING: Location' || true
    [ -f "$cache/pip-$version-py3-none-any.whl" ] || return 1
  fi
  cp scripts/quality/get_pip_offline.py "$cache/get_pip_${version//./_}.py"
}

sanity() {
  [ -n "$tarball" ] || build || return 1
  prepare_pip_bootstrap || { echo "cannot prepare the pip bootstrap for ansible-test"; return 1; }
  local dir=$work/sanity/ansible_collections/chaosfleet/stress
  mkdir -p "$dir"
  tar -C "$dir" -xzf "$tarball"
  (cd "$dir" && ansible-test sanity --venv --python "$sanity_python" --color no --truncate 0 \
      > "$work/sanity.log" 2>&1)
  local rc=$?
  # Findings and the verdict; pip's chatter from building the venvs stays out.
  grep -E '^(ERROR|FATAL|WARNING: Skipping|Running sanity test)' "$work/sanity.log" \
    | grep -v '^FATAL: Command ' || true
  if [ "$rc" -ne 0 ] && ! grep -q '^ERROR' "$work/sanity.log"; then tail -40 "$work/sanity.log"; fi
  return "$rc"
}

awx_collections=""
fetch_awx() {
  [ -n "$awx_collections" ] && return 0
  python scripts/quality/awx_collection.py "$work/awx" 2>&1 | grep -v '^WARNING: Location' >/dev/null
  [ -d "$work/awx/ansible_collections/awx/awx" ] || { echo "could not unpack awx.awx"; return 1; }
  awx_collections=$work/awx
}

lint() {
  fetch_awx || return 1
  ANSIBLE_COLLECTIONS_PATH="$awx_collections:$root/.collections" \
    ansible-lint --offline --profile production --nocolor 2>&1 \
    | grep -vE '^WARNING: PATH altered|Directory expansion discovered'
  return "${PIPESTATUS[0]}"
}

awx_syntax() {
  fetch_awx || return 1
  ANSIBLE_COLLECTIONS_PATH="$awx_collections:$root/.collections" \
    ansible-playbook --syntax-check awx/configure.yml 2>&1 | grep -v 'provided hosts list is empty'
  return "${PIPESTATUS[0]}"
}

changelog() {
  antsibull-changelog lint
}

installed=""
install_tarball() {
  [ -n "$installed" ] && return 0
  [ -n "$tarball" ] || build || return 1
  ANSIBLE_COLLECTIONS_PATH=$work/installed ansible-galaxy collection install --offline --no-deps --force \
    -p "$work/installed" "$tarball" >/dev/null || return 1
  installed=$work/installed
}

ee() {
  install_tarball || return 1
  local deps
  deps=$(ansible-builder introspect --sanitize "$installed") || return 1
  echo "$deps" | sed -n '/^python:/,$p'
  # The collection's EE metadata must bring the controller-side packages.
  for package in kubernetes jinja2 openssh-client; do
    grep -q -- "- '$package" <<<"$deps" || { echo "execution environment lacks $package"; return 1; }
  done
  ansible-builder create -f awx/execution-environment.yml --context "$work/ee-context" >/dev/null
}

# Node-side code runs on managed nodes with Python 3.8 or later; no 3.8 interpreter here, so check statically.
node38() {
  local files
  # _k8s_auth.py runs on the nodes too (probe code imports it); the other _k8s_ files are the controller's.
  files=$(ls plugins/modules/*.py plugins/module_utils/*.py | grep -v -E '/(k8s_targets|stress_report)\.py$|/_k8s_(client|select)\.py$')
  vermin --target=3.8- --violations --no-tips --eval-annotations $files
}

docs() {
  install_tarball || return 1
  scripts/quality/build_docs.sh "$installed"
}

want build && run_step build build
want sanity && run_step "ansible-test sanity" sanity
want node38 && run_step "node-side code on Python 3.8 (vermin)" node38
want lint && run_step "ansible-lint (production)" lint
want awx && run_step "awx syntax-check" awx_syntax
want changelog && run_step "antsibull-changelog lint" changelog
want ee && run_step "execution environment" ee
want docs && run_step docs docs
exit $status
