# Shared fixtures. pytest.ini puts the repo and .collections (the collection link) on sys.path.
import atexit
import os
import shutil
import tempfile

LOCAL_TEMP_PREFIX = "cftest-ansible-local-"

# Ansible's controller keeps a temp dir per process (ansible-local-*) that only a clean exit removes, and the fault
# tests kill playbooks on purpose: every ansible process the tests start keeps it here instead of in ~/.ansible/tmp.
# Set at import, before the fixture modules copy os.environ into their ENV; xdist workers inherit it, and the
# pytest process that made it removes it when it exits (atexit: pytest_unconfigure is skipped on a usage error).
if "ANSIBLE_LOCAL_TEMP" not in os.environ:
    os.environ["ANSIBLE_LOCAL_TEMP"] = tempfile.mkdtemp(prefix=LOCAL_TEMP_PREFIX)
    atexit.register(shutil.rmtree, os.environ["ANSIBLE_LOCAL_TEMP"], ignore_errors=True)
