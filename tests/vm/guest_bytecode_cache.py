"""Keeps the bytecode of modules that Python imports from zip files, in the cfvm guest only.

Ansible sends every module run as a zip (AnsiballZ), and Python compiles the sources of a zip on each
import: it never writes a .pyc for them. Under TCG that compile is a large share of each module run in
the guest. guest_boot.sh installs this file as a .pth-loaded module of the guest's Python (on the guest's
overlay; the host is untouched); it stores each compiled module by the SHA-256 of its source, so a
changed source compiles afresh, and gives the code back under the path of the zip that asked for it.
The code that runs is the same; only its compile is skipped.
"""

import hashlib
import marshal
import os
import types
import zipimport

CACHE = "/run/cfvm-bytecode"
_compile_source = zipimport._compile_source


def _with_filename(code, filename):
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def compile_source_cached(pathname, source):
    path = os.path.join(CACHE, hashlib.sha256(source).hexdigest())
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
