#!/usr/bin/python3
"""A lab service whose latency depends on memory pressure because the kernel makes it so.

Standard library only; runs with the node's /usr/bin/python3 as the app container of a runc lab pod
(``lab.py add-pod``), in the pod's memory cgroup.

    cache_app.py --data-dir /data --size-mib 128 --port 8080 [--listen 127.0.0.1]
                 [--touches 8192] [--rate 20] [--heap-mib 0] [--oom-score-adj N]

At start the app writes a file of --size-mib random bytes on --data-dir (a disk-backed filesystem,
bind-mounted into the pod; never tmpfs, whose pages cannot be evicted) and reads it back once, from
inside its own cgroup: the file's page cache is charged to the pod and sits on the active list, so it
counts in the pod's working set. Each request to ``/`` touches --touches random pages of the file
through a read-only mapping (MADV_RANDOM: no read-ahead). A page in the cache costs a memory load; a
page the kernel evicted costs a major fault, a disk read and, with the cgroup at its limit, a memcg
reclaim. So when a stress takes the pod's memory past ``limit - (app + file)`` the kernel evicts the
file and latency rises with the share evicted: the knee is the kernel's, not a number the app was given.

Endpoints:
- ``/``: does the work; 200 with ``{"seconds": ..., "touches": ...}``.
- ``/metrics``: Prometheus text: ``cache_app_request_seconds`` (histogram of ``/``),
  ``cache_app_resident_ratio`` (share of the file in the page cache, mincore(2) through ctypes),
  ``cache_app_file_bytes``, ``cache_app_info{fstype=...}``.
- ``/health``: 200 ``ok`` without touching the file.

A load thread requests ``/`` from the app itself at --rate per second (one at a time), so the histogram
has data whether or not anyone else calls.

For the test of the search's app_oom guard: --heap-mib, anonymous memory the app holds (an in-memory
index), and --oom-score-adj (1000 is what kubelet gives a BestEffort container): the memcg OOM killer then
picks the app when it is the largest process in the cgroup, e.g. beside a stress split over several workers.
"""

import argparse
import array
import ctypes
import http.client
import json
import mmap
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = mmap.PAGESIZE
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0)
FILE_NAME = "working-set.bin"


def filesystem_type(path):
    """The type of the filesystem holding path, from this process's mountinfo (longest mount point)."""
    best, fstype = "", "unknown"
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            point = left.split()[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, fstype = point, right.split()[0]
    return fstype


def build_file(path, size):
    """Write a fresh file (a new inode: no page of it is charged to anyone else), then read it once."""
    tmp = path + ".tmp"
    chunk = bytearray(os.urandom(1 << 20))
    with open(tmp, "wb") as out:
        for index in range(size >> 20):
            chunk[:8] = index.to_bytes(8, "little")  # no two MiB alike (dedup-proof, not that ext4 would)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    # Two reads put each page on the active list, as a service that has run a while has its hot file:
    # the cache then counts in the pod's working set (usage - inactive_file), which is what kubelet and
    # the stressor read. (The mapping's touches alone never activate a page: only reclaim looks at them.)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _pass in range(2):
            offset = 0
            while offset < size:
                offset += len(os.pread(fd, 1 << 20, offset)) or size
    finally:
        os.close(fd)


class Resident(object):
    """Share of the file's pages in the page cache, from mincore(2) on a private mapping (ctypes)."""

    def __init__(self, path, size):
        self.path, self.size = path, size
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_long)
            libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
            libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
            self.libc = libc
        except (OSError, AttributeError):
            self.libc = None

    def ratio(self):
        if self.libc is None:
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            address = self.libc.mmap(None, self.size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if address in (None, ctypes.c_void_p(-1).value):
                return None
            try:
                pages = (self.size + PAGE - 1) // PAGE
                vector = ctypes.create_string_buffer(pages)
                if self.libc.mincore(address, self.size, vector) != 0:
                    return None
                return sum(byte & 1 for byte in vector.raw) / float(pages)
            finally:
                self.libc.munmap(address, self.size)
        finally:
            os.close(fd)


class Histogram(object):
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = [0] * len(BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds):
        with self.lock:
            self.total += 1
            self.sum += seconds
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.counts[index] += 1

    def text(self, name):
        with self.lock:
            lines = ["# HELP %s Time to serve / (random page touches of the working-set file)." % name,
                     "# TYPE %s histogram" % name]
            for bound, count in zip(BUCKETS, self.counts):
                lines.append('%s_bucket{le="%s"} %d' % (name, repr(bound), count))
            lines.append('%s_bucket{le="+Inf"} %d' % (name, self.total))
            lines.append("%s_sum %.6f" % (name, self.sum))
            lines.append("%s_count %d" % (name, self.total))
        return "\n".join(lines) + "\n"


class App(object):
    def __init__(self, args):
        self.args = args
        os.makedirs(args.data_dir, exist_ok=True)
        self.path = os.path.join(args.data_dir, FILE_NAME)
        self.size = args.size_mib << 20
        self.fstype = filesystem_type(args.data_dir)
        build_file(self.path, self.size)
        self.fd = os.open(self.path, os.O_RDONLY)
        self.map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ)
        self.map.madvise(mmap.MADV_RANDOM)
        pages = self.size // PAGE
        order = list(range(pages))
        random.Random(args.seed).shuffle(order)
        # Byte offsets in a random order; a request walks --touches of them from a random start.
        self.offsets = array.array("q", (p * PAGE for p in order))
        self.histogram = Histogram()
        self.resident = Resident(self.path, self.size)
        self.started = time.time()

    def work(self):
        touches, offsets, mapped = self.args.touches, self.offsets, self.map
        start = random.randrange(len(offsets))
        picked = offsets[start:start + touches]
        if len(picked) < touches:
            picked = picked + offsets[:touches - len(picked)]
        began = time.perf_counter()
        total = 0
        for offset in picked:
            total += mapped[offset]
        seconds = time.perf_counter() - began
        self.histogram.observe(seconds)
        return seconds, total

    def metrics(self):
        ratio = self.resident.ratio()
        text = self.histogram.text("cache_app_request_seconds")
        text += ("# HELP cache_app_file_bytes Size of the working-set file.\n# TYPE cache_app_file_bytes gauge\n"
                 "cache_app_file_bytes %d\n" % self.size)
        if ratio is not None:
            text += ("# HELP cache_app_resident_ratio Share of the working-set file in the page cache.\n"
                     "# TYPE cache_app_resident_ratio gauge\ncache_app_resident_ratio %.4f\n" % ratio)
        text += ('# HELP cache_app_info The app and where its file lives.\n# TYPE cache_app_info gauge\n'
                 'cache_app_info{fstype="%s",touches="%d"} 1\n' % (self.fstype, self.args.touches))
        return text


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, body, content_type="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == "/":
            seconds, _total = app.work()
            return self.answer(200, json.dumps({"seconds": round(seconds, 6), "touches": app.args.touches}) + "\n")
        if path == "/metrics":
            return self.answer(200, app.metrics(), "text/plain; version=0.0.4")
        if path == "/health":
            return self.answer(200, "ok\n", "text/plain")
        return self.answer(404, "not found\n", "text/plain")


def load_loop(port, rate, stopping):
    """Request / from the app itself at a steady rate (one request at a time)."""
    interval = 1.0 / rate
    connection = None
    due = time.monotonic()
    while not stopping.is_set():
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/")
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            if connection is not None:
                connection.close()
            connection = None
            stopping.wait(0.2)
        due = max(due + interval, time.monotonic())
        stopping.wait(max(0.0, due - time.monotonic()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--touches", type=int, default=8192, help="random pages touched per request")
    parser.add_argument("--rate", type=float, default=20.0, help="self-load requests per second (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--heap-mib", type=int, default=0, help="anonymous memory the app holds")
    parser.add_argument("--oom-score-adj", type=int, default=None)
    args = parser.parse_args(argv)
    if args.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write(str(args.oom_score_adj))
    heap = bytearray(args.heap_mib << 20)
    for offset in range(0, len(heap), PAGE):
        heap[offset] = 1  # touched: resident, charged to the pod
    app = App(args)
    app.heap = heap
    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    server.daemon_threads = True
    server.app = app
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.rate > 0:
        threading.Thread(target=load_loop, args=(args.port, args.rate, stopping), daemon=True).start()
    sys.stdout.write("cache_app: %d MiB on %s (%s), listening on %s:%d\n" % (
        args.size_mib, args.data_dir, app.fstype, args.listen, args.port))
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stopping.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
