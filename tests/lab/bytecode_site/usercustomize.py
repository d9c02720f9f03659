# Python imports usercustomize at start-up from its path: the SSH lab nodes' sshd puts this directory on
# PYTHONPATH, so every module run there keeps its bytecode (zip_bytecode_cache.py).
import zip_bytecode_cache  # noqa: F401  pylint: disable=unused-import
