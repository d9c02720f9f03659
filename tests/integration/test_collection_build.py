"""The collection as users get it: build the tarball, install it into a fresh path, and check
that ansible-doc finds and renders every plugin and role from that install (not the working tree).
"""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"

# plugins/ folders that hold no plugins ansible-doc lists.
NOT_PLUGIN_DIRS = {"module_utils", "doc_fragments", "plugin_utils", "action"}
# Folder name -> ansible-doc -t name, for the plugin types a collection may carry.
# (Filter and test files may hold several plugins; this collection names each file after its one
# plugin, which the listing check holds it to.)
DOC_TYPES = {"modules": "module", "filter": "filter", "test": "test", "lookup": "lookup", "callback": "callback",
             "inventory": "inventory", "connection": "connection", "become": "become", "cache": "cache",
             "vars": "vars", "strategy": "strategy", "shell": "shell", "cliconf": "cliconf",
             "httpapi": "httpapi", "netconf": "netconf"}

pytestmark = pytest.mark.slow


def source_plugins():
    """{doc type: sorted plugin names} as the working tree has them."""
    found = {}
    for folder in sorted((REPO / "plugins").iterdir()):
        if not folder.is_dir() or folder.name in NOT_PLUGIN_DIRS or folder.name == "__pycache__":
            continue
        assert folder.name in DOC_TYPES, "plugins/%s: unknown plugin folder" % folder.name
        found[DOC_TYPES[folder.name]] = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    return found


def source_roles():
    return sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())


def source_playbooks():
    return sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(collections path, env) of a fresh install of the built tarball."""
    work = tmp_path_factory.mktemp("collection-build")
    dist, fresh = work / "dist", work / "collections"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(fresh), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_CONFIG=str(work / "none.cfg"),
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(REPO)],
                   check=True, env=env, cwd=str(work), stdout=subprocess.PIPE)
    tarballs = list(dist.glob("chaosfleet-stress-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force",
                    "-p", str(fresh), str(tarballs[0])], check=True, env=env, cwd=str(work), stdout=subprocess.PIPE)
    root = fresh / "ansible_collections" / "chaosfleet" / "stress"
    assert (root / "MANIFEST.json").is_file()
    return {"root": root, "env": env, "cwd": str(work), "tarball": tarballs[0]}


def ansible_doc(installed, *args):
    proc = subprocess.run([str(BIN / "ansible-doc")] + list(args), env=installed["env"], cwd=installed["cwd"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, "ansible-doc %s failed:\n%s" % (" ".join(args), proc.stderr)
    assert "[ERROR]" not in proc.stderr and "[WARNING]" not in proc.stderr, proc.stderr
    return proc.stdout


def test_tarball_carries_the_collection_content(installed):
    with tarfile.open(str(installed["tarball"])) as archive:
        names = set(archive.getnames())
    for required in ("MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml"):
        assert required in names
    for playbook in source_playbooks():
        assert "playbooks/%s.yml" % playbook in names
    for role in source_roles():
        assert "roles/%s/meta/argument_specs.yml" % role in names, "role %s has no argument_specs.yml" % role
    # Nothing from the developer's machine or the lab.
    assert not [n for n in names if n.startswith((".venv", ".lab", ".git/", ".collections", "reports/"))]


def test_source_has_plugins_and_roles_to_check():
    # Guards the tests below against passing on an empty tree.
    assert source_plugins().get("module")
    assert source_roles()


@pytest.mark.parametrize("doc_type", sorted(source_plugins()))
def test_ansible_doc_lists_every_plugin_from_the_install(installed, doc_type):
    expected = source_plugins()[doc_type]
    listed = json.loads(ansible_doc(installed, "-t", doc_type, "-l", "chaosfleet.stress", "--json"))
    assert sorted(listed) == ["chaosfleet.stress." + name for name in expected]


@pytest.mark.parametrize("doc_type", sorted(source_plugins()))
def test_ansible_doc_renders_every_plugin_from_the_install(installed, doc_type):
    names = ["chaosfleet.stress." + name for name in source_plugins()[doc_type]]
    docs = json.loads(ansible_doc(installed, "-t", doc_type, "--json", *names))
    assert sorted(docs) == sorted(names)
    for name, entry in docs.items():
        doc = entry["doc"]
        assert doc["filename"].startswith(str(installed["root"])), "%s rendered from %s" % (name, doc["filename"])
        assert doc.get("short_description"), name
        assert entry.get("examples"), "%s has no EXAMPLES" % name
        if doc_type == "module":
            assert entry.get("return"), "%s has no RETURN" % name
            assert set(doc.get("attributes", {})) >= {"check_mode", "diff_mode", "platform"}, name
        text = ansible_doc(installed, "-t", doc_type, name)
        header = text.splitlines()[0].replace("*", "")
        assert header.startswith("> %s %s (%s" % (doc_type.upper(), name, installed["root"])), header
        assert "EXAMPLES:" in text


@pytest.mark.parametrize("role", source_roles())
def test_ansible_doc_renders_every_role_from_the_install(installed, role):
    fqcn = "chaosfleet.stress." + role
    listed = json.loads(ansible_doc(installed, "-t", "role", "-l", "chaosfleet.stress", "--json"))
    assert fqcn in listed
    rendered = json.loads(ansible_doc(installed, "-t", "role", "--json", fqcn))[fqcn]
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert rendered["path"].startswith(str(installed["root"]))
    assert sorted(rendered["entry_points"]) == sorted(spec)
    for entry, want in spec.items():
        got = rendered["entry_points"][entry]
        assert sorted(got.get("options") or {}) == sorted(want.get("options") or {}), (role, entry)
        assert got.get("short_description"), (role, entry)
    text = ansible_doc(installed, "-t", "role", fqcn).replace("*", "")
    assert text.startswith("> ROLE: %s (%s" % (fqcn, installed["root"])), text.splitlines()[0]
    for entry, want in spec.items():
        assert "ENTRY POINT: %s - %s" % (entry, want["short_description"]) in text


@pytest.mark.parametrize("playbook", source_playbooks())
def test_collection_playbooks_parse_from_the_install(installed, playbook):
    proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                           "chaosfleet.stress." + playbook], env=installed["env"], cwd=installed["cwd"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("core", ["2.18", "2.19"])
def test_sanity_ignore_files_stay_empty(core):
    # scripts/quality.sh runs ansible-test sanity with these; a finding gets fixed, not ignored.
    path = REPO / "tests" / "sanity" / ("ignore-%s.txt" % core)
    assert path.is_file() and path.read_text().strip() == ""
