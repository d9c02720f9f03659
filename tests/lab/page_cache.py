"""Page-cache tools for tests: how much of a file is cached, and dropping it (as memory pressure would)."""

import ctypes
import mmap
import os


def resident_share(paths):
    """The share of the files' pages that sit in the page cache, from mincore(2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    total = resident = 0
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if not size:
                continue
            address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if address in (None, ctypes.c_void_p(-1).value):
                raise OSError(ctypes.get_errno(), "mmap %s" % path)
            try:
                pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
                vector = ctypes.create_string_buffer(pages)
                if libc.mincore(address, size, vector) != 0:
                    raise OSError(ctypes.get_errno(), "mincore %s" % path)
                total += pages
                resident += sum(byte & 1 for byte in vector.raw)
            finally:
                libc.munmap(address, size)
        finally:
            os.close(fd)
    return resident / float(total) if total else 0.0


def evict_page_cache(paths):
    """Drop the files' clean, unmapped pages from the page cache (what a node under memory pressure does)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
