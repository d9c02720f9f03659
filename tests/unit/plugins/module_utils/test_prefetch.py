import os
import subprocess
import sys

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._prefetch import prefetch, program_files, shared_libraries
from tests.lab.page_cache import evict_page_cache, resident_share

LDD_FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "ldd")


def _ldd(name):
    with open(os.path.join(LDD_FIXTURES, name)) as handle:
        return handle.read()


@pytest.mark.parametrize("name, expected", [
    ("static.txt", []),
    ("missing-library.txt", ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]),
    ("alpine-musl.txt", ["/lib/ld-musl-x86_64.so.1"]),
])
def test_shared_libraries_reads_every_ldd_layout(name, expected):
    assert shared_libraries(_ldd(name)) == expected


def test_shared_libraries_of_stress_ng_on_debian_12():
    found = shared_libraries(_ldd("stress-ng-debian12.txt"))
    assert len(found) == 26
    assert found[0] == "/lib/x86_64-linux-gnu/libm.so.6"
    assert "/lib64/ld-linux-x86-64.so.2" in found
    assert not [path for path in found if "vdso" in path]


class Answer(object):
    def __init__(self, stdout, returncode=0):
        self.stdout, self.returncode = stdout, returncode


@pytest.mark.parametrize("case, answer, expected", [
    ("libraries follow their executable", Answer(_ldd("missing-library.txt")),
     ["/bin/stress", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]),
    ("a static executable alone", Answer(_ldd("static.txt"), returncode=1), ["/bin/stress"]),
    ("ldd failing to run", OSError("no ldd"), ["/bin/stress"]),
    ("ldd hanging", subprocess.TimeoutExpired("ldd", 30), ["/bin/stress"]),
])
def test_program_files_keeps_the_executables_whatever_ldd_does(monkeypatch, case, answer, expected):
    monkeypatch.setattr("shutil.which", lambda *_args, **_kwargs: "/usr/bin/ldd")

    def run(argv, **_kwargs):
        assert argv == ["/usr/bin/ldd", "/bin/stress"], case
        if isinstance(answer, Exception):
            raise answer
        return answer
    monkeypatch.setattr("os.path.realpath", lambda path: path)
    assert program_files(["/bin/stress", None], run=run) == expected, case


def test_program_files_lists_a_shared_library_once(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda *_args, **_kwargs: "/usr/bin/ldd")
    monkeypatch.setattr("os.path.realpath", lambda path: path)
    files = program_files(["/bin/a", "/bin/b"], run=lambda argv, **_kw: Answer(_ldd("missing-library.txt")))
    assert files == ["/bin/a", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2", "/bin/b"]


def test_program_files_of_a_real_interpreter_include_its_libraries():
    files = program_files([sys.executable])
    assert files[0] == os.path.realpath(sys.executable)
    assert all(os.path.isabs(path) and os.path.exists(path) for path in files)


def test_prefetch_reports_what_it_could_not_read(tmp_path):
    there = tmp_path / "there"
    there.write_bytes(b"x" * 8192)
    assert prefetch([str(there), str(tmp_path / "gone")]) == [str(tmp_path / "gone")]


@pytest.mark.parametrize("hints", ["honoured", "ignored"])
def test_prefetch_pages_in_all_of_a_file_in_one_call(tmp_path, monkeypatch, hints):
    """One read-ahead request stops at the device's window (8 MiB here, under 0.5 MiB on the VM's 9p root),
    and a busy disk may drop it: ``ignored`` stands for both, and the touch of every page must still page
    the whole file in."""
    big = tmp_path / "big"
    with open(str(big), "wb") as handle:
        handle.write(os.urandom(20 * 1024 * 1024 + 123))
        handle.flush()
        os.fsync(handle.fileno())
    evict_page_cache([str(big)])
    assert resident_share([str(big)]) < 0.1  # else the test proves nothing
    if hints == "ignored":
        monkeypatch.setattr(os, "posix_fadvise", lambda *args: None)
    assert prefetch([str(big)]) == []
    assert resident_share([str(big)]) == 1.0


def test_prefetch_of_an_empty_file_reads_nothing_and_misses_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert prefetch([str(empty)]) == []
