"""Stand-in for the get-pip.py script that ansible-test downloads to bootstrap pip.

ansible-test --venv creates each sanity virtual environment without pip and fetches
get-pip.py from a host that is not reachable here. It looks for a cached copy first,
so scripts/quality.sh installs this file under that cache name, next to a pip wheel it
downloaded from PyPI. Like get-pip.py, it runs that pip from a temporary directory to
install the pinned pip (and the packages named on the command line) into the
interpreter that runs it.
"""

import glob
import os
import shutil
import sys
import tempfile
import zipfile


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = sorted(glob.glob(os.path.join(here, 'pip-*-py3-none-any.whl')))
    if not wheels:
        sys.exit('no pip wheel next to %s; run scripts/quality.sh' % __file__)

    # get-pip.py options that only make sense for it: it installs setuptools and wheel
    # unless told not to; we never do, so drop them.
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]

    tmp = tempfile.mkdtemp(prefix='cf-get-pip-')
    try:
        # Only the package, not its dist-info: the running pip must not look installed,
        # or `pip install pip==X` would be a no-op.
        with zipfile.ZipFile(wheels[-1]) as wheel:
            members = [m for m in wheel.namelist() if m.startswith('pip/')]
            wheel.extractall(tmp, members)
        sys.path.insert(0, tmp)
        from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel
        return pip_main(['install', '--upgrade', '--force-reinstall'] + args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
