"""Keeps the bytecode of modules that Python imports from zip files, on the lab's nodes only.

Ansible sends every module run as a zip (AnsiballZ), and Python compiles the sources of a zip on each
import: it never writes a .pyc for them. That compile is a large share of a short module run (about
0.1 s on this host, far more in the emulated VM). A lab node loads this module at start-up (the VM
guest through a .pth file on its overlay, the SSH lab nodes through usercustomize.py beside it, on
the PYTHONPATH their sshd sets); it stores each compiled module in CFLAB_BYTECODE_CACHE (the node's
private /run by default) by the interpreter's magic number and the SHA-256 of the source, so a
changed source compiles afresh, and gives the code back under the path of the zip that asked for it.
The code that runs is the same; only its compile is skipped.
"""

import hashlib
import importlib.util
import marshal
import os
import types
import zipimport

CACHE = os.environ.get("CFLAB_BYTECODE_CACHE") or "/run/cflab-bytecode"
_compile_source = zipimport._compile_source


def _with_filename(code, filename):
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def compile_source_cached(pathname, source):
    key = hashlib.sha256(importlib.util.MAGIC_NUMBER + source).hexdigest()
    path = os.path.join(CACHE, key)
    try:
        with open(path, "rb") as handle:
            return _with_filename(marshal.loads(handle.read()), pathname)
    except (OSError, ValueError, EOFError, TypeError):
        pass
    code = _compile_source(pathname, source)
    try:
        os.makedirs(CACHE, exist_ok=True)
        partial = "%s.%d" % (path, os.getpid())
        with open(partial, "wb") as handle:
            handle.write(marshal.dumps(code))
        os.rename(partial, path)  # whole or absent, for module runs that import at the same time
    except OSError:
        pass
    return code


zipimport._compile_source = compile_source_cached
