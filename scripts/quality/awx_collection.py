"""Unpack the awx.awx collection into a throwaway collections path.

Ansible Galaxy is not reachable here, but the community `ansible` package on PyPI bundles
awx.awx. pip downloads that wheel (no install, no dependencies) and only the
ansible_collections/awx/awx/ part of it is unpacked, for `ansible-playbook --syntax-check`
and ansible-lint of awx/configure.yml.

Usage: python awx_collection.py DEST [REQUIREMENT]    (prints DEST/ansible_collections/awx/awx)
"""

import glob
import os
import subprocess
import sys
import zipfile

# ansible 12 is the last major release that installs beside Python 3.11; it carries awx.awx 24.6.
DEFAULT_REQUIREMENT = 'ansible==12.3.0'
PREFIX = 'ansible_collections/awx/awx/'


def main(argv):
    dest = os.path.abspath(argv[1])
    requirement = argv[2] if len(argv) > 2 else DEFAULT_REQUIREMENT
    wheels = os.path.join(dest, 'wheels')
    subprocess.run([sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:',
                    '--dest', wheels, requirement], check=True)
    wheel = sorted(glob.glob(os.path.join(wheels, 'ansible-*.whl')))[-1]
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.startswith(PREFIX)]
        if not members:
            sys.exit('%s holds no awx.awx collection' % os.path.basename(wheel))
        archive.extractall(dest, members)
    os.remove(wheel)
    print(os.path.join(dest, PREFIX.rstrip('/')))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
