"""Builds fake node trees (proc + cgroup mounts) from the fixture files, for unit tests."""

import os
import shutil

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "cgroup")


def fixture_path(*parts):
    return os.path.join(FIXTURES, *parts)


class FakeNode(object):
    """A proc_root/sys_root pair laid out like a node with the given mountinfo fixture."""

    def __init__(self, tmp_path, mountinfo):
        from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import parse_mountinfo

        self.root = str(tmp_path)
        self.proc_root = os.path.join(self.root, "proc")
        self.sys_root = os.path.join(self.root, "sysroot")
        os.makedirs(os.path.join(self.proc_root, "self"))
        shutil.copy(fixture_path("mountinfo", mountinfo), os.path.join(self.proc_root, "self", "mountinfo"))
        with open(fixture_path("mountinfo", mountinfo)) as handle:
            v1, v2 = parse_mountinfo(handle.read())
        self.version = 2 if (v2 and not v1) else 1
        self.mountpoints = sorted(set([m.mountpoint for m in v1.values()] + [m.mountpoint for m in v2]))
        for mountpoint in self.mountpoints:
            os.makedirs(self.sys_root + mountpoint, exist_ok=True)
        if self.version == 2:
            with open(self.sys_root + v2[0].mountpoint + "/cgroup.controllers", "w") as handle:
                handle.write("cpuset cpu io memory hugetlb pids rdma misc\n")

    def add_cgroup(self, path, stats=True, processes=()):
        """Create ``path`` in every hierarchy; fill it with the v1 or v2 stat fixtures; add processes."""
        for mountpoint in self.mountpoints:
            directory = self.sys_root + mountpoint + path
            os.makedirs(directory, exist_ok=True)
            if stats:
                source = fixture_path("v2" if self.version == 2 else "v1")
                for name in os.listdir(source):
                    shutil.copy(os.path.join(source, name), os.path.join(directory, name))
            with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
                handle.write("".join("%d\n" % pid for pid, _comm, _adj in processes))
        for pid, comm, adj in processes:
            self.add_process(pid, comm, adj, path)
        return path

    def add_process(self, pid, comm, adj, path):
        directory = os.path.join(self.proc_root, str(pid))
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "comm"), "w") as handle:
            handle.write(comm + "\n")
        with open(os.path.join(directory, "oom_score_adj"), "w") as handle:
            handle.write("%d\n" % adj)
        with open(os.path.join(directory, "cgroup"), "w") as handle:
            if self.version == 2:
                handle.write("0::%s\n" % path)
            else:
                handle.write("11:memory:%s\n4:cpu,cpuacct:%s\n0::/\n" % (path, path))

    def params(self, **selector):
        out = dict(proc_root=self.proc_root, sys_root=self.sys_root, include_sandbox=False)
        out.update(selector)
        return out
