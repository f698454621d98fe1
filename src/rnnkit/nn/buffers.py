"""Large CPU buffers for rnnkit.nn's whole-sequence paths: reused across calls, on huge pages where
those help.

The sequence Functions (:mod:`rnnkit.nn.sequence`, :mod:`rnnkit.nn.minrnn`) fill fresh
``(T, B, .)`` buffers at every call: gates, activations, states, their gradients. A fresh
allocation above glibc's mmap threshold (32 MiB at most) is new memory from the kernel, so the
first write to each of its 4 KiB pages is a page fault, and it goes back to the kernel when freed:
every training step faults the same few hundred MB in again (on a 2-vCPU VM, a layer-norm GRU
step at B=64, T=256, I=256, H=512 faulted 180k pages, 240 ms of system time in a 1.1 s step).

:func:`empty` serves buffers of 1 MiB and more from a cache of storages instead. A storage is
free when nothing but the cache refers to it: every tensor, view and autograd-saved tensor on it
holds a reference, so a buffer is never handed out again while anything can still read it
(``retain_graph=True`` included). A storage moved to shared memory (``share_memory_()``, as
``torch.multiprocessing`` does to a CPU tensor it sends) is never handed out again: the process
that received it reads it with no reference here. Sizes are rounded up to size classes (at most 1/8 more) so that
varying lengths still find their buffers. Idle buffers stay until a request that none of them
fits; then the least recently used are released until at most ``RNNKIT_BUFFER_CACHE_MB`` (default
1024) stay idle: a loop of one shape keeps the buffers of one step, and one of varying shapes at
most that much more than it would without the cache. ``RNNKIT_BUFFER_CACHE_MB=0`` turns the
cache off; :func:`empty_cache` releases every idle buffer now.

New buffers of 4 MiB and more ask Linux for transparent huge pages before their first touch
(``madvise(MADV_HUGEPAGE)``, one fault per 2 MiB instead of 512) where :func:`huge_pages_wanted`.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.errors import ConfigError

_MIN_CACHED = 1 << 20  # bytes: smaller buffers come from torch's allocator (glibc reuses them anyway)
_HUGE_PAGE = 2 << 20  # bytes in a transparent huge page (x86-64, aarch64 with 4 KiB pages)
_MADV_HUGEPAGE = 14
_libc: list = []  # [madvise or None] once looked up


def empty(like: Tensor, *shape: int) -> Tensor:
    """An uninitialized contiguous tensor of ``shape`` with ``like``'s dtype and device: from the
    cache of :class:`BufferCache` when it is a CPU buffer of 1 MiB or more, else ``like.new_empty``."""
    nbytes = like.element_size() * _numel(shape)
    if like.device.type != "cpu":
        return like.new_empty(shape)
    cache = _the_cache()
    if nbytes < _MIN_CACHED or cache.limit == 0 or _use_count is None:
        return _fresh(like, shape)
    return cache.take(like, shape, nbytes)


def empty_cache() -> None:
    """Release every idle cached buffer (in use ones stay until nothing refers to them)."""
    _the_cache().release_idle(0)


def cache_info() -> dict[str, int]:
    """``{"buffers", "in_use_bytes", "idle_bytes", "limit_bytes"}`` of the cache now."""
    return _the_cache().info()


class BufferCache:
    """Storages kept for reuse; see the module docstring for the policy.

    ``limit``: bytes of idle storages kept when a request finds none that fits (0: no cache).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._storages: list[torch.UntypedStorage] = []  # least recently handed out first
        self._lock = threading.Lock()

    def take(self, like: Tensor, shape: tuple[int, ...], nbytes: int) -> Tensor:
        """A ``shape`` tensor of ``like``'s dtype on a free storage of ``nbytes``' size class, or on
        a new one (evicting idle ones to the limit). The tensor is made under the lock, so that no
        other thread can take the same storage in between."""
        capacity = size_class(nbytes)
        with self._lock:
            storage = self._take_idle(capacity)
            if storage is None:
                self._evict(self.limit - capacity)
                storage = _new_storage(capacity)
            self._storages.append(storage)  # now the most recently used
            return like.new_empty(0).set_(storage, 0, shape, _contiguous_strides(shape))

    def _take_idle(self, capacity: int) -> torch.UntypedStorage | None:
        """The least recently used idle storage of ``capacity`` bytes, taken out of the list, or
        ``None``. Idle ones in shared memory on the way leave the cache: ``share_memory_()`` (what
        ``torch.multiprocessing`` does to a CPU tensor it sends) hands the storage to a process
        that reads it with no reference here."""
        k = 0
        while k < len(self._storages):
            storage = self._storages[k]
            if storage.nbytes() == capacity and _is_idle(storage):
                del self._storages[k]
                if not storage.is_shared():
                    return storage
            else:
                k += 1
        return None

    def release_idle(self, keep: int) -> None:
        """Drop idle storages, least recently used first, until at most ``keep`` bytes stay idle."""
        with self._lock:
            self._evict(keep)

    def _evict(self, keep: int) -> None:
        idle = [s for s in self._storages if _is_idle(s)]
        total = sum(s.nbytes() for s in idle)
        for storage in idle:
            if total <= keep:
                break
            self._storages.remove(storage)
            total -= storage.nbytes()

    def info(self) -> dict[str, int]:
        with self._lock:
            idle = sum(s.nbytes() for s in self._storages if _is_idle(s))
            every = sum(s.nbytes() for s in self._storages)
            return {"buffers": len(self._storages), "in_use_bytes": every - idle, "idle_bytes": idle,
                    "limit_bytes": self.limit}  # fmt: skip


def size_class(nbytes: int) -> int:
    """``nbytes`` rounded up to its size class: a multiple of 1/8 of the power of two below it
    (at most 12.5% more), so that nearby sizes share buffers."""
    step = max(1 << (nbytes.bit_length() - 4), 4096)
    return -(-nbytes // step) * step


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for size in shape:
        n *= size
    return n


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, n = [], 1
    for size in reversed(shape):
        strides.append(n)
        n *= max(size, 1)
    return tuple(reversed(strides))


# torch's count of references to a storage (tensors, views, saved tensors); where this torch lacks
# it, nothing is cached.
_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _is_idle(storage: torch.UntypedStorage) -> bool:
    """Whether only the cache's own reference to ``storage`` is left."""
    return _use_count(storage._cdata) == 1


def _new_storage(nbytes: int) -> torch.UntypedStorage:
    storage = torch.UntypedStorage(nbytes)
    _advise_huge_pages(storage.data_ptr(), nbytes)
    return storage


def _fresh(like: Tensor, shape: tuple[int, ...]) -> Tensor:
    t = like.new_empty(shape)
    _advise_huge_pages(t.data_ptr(), t.numel() * t.element_size())
    return t


def _advise_huge_pages(address: int, nbytes: int) -> None:
    """``madvise(MADV_HUGEPAGE)`` on the whole huge pages inside a block of 4 MiB or more, where
    :func:`huge_pages_wanted` (before its first touch)."""
    if nbytes < 2 * _HUGE_PAGE or _madvise() is None:
        return
    start = -(-address // _HUGE_PAGE) * _HUGE_PAGE
    end = (address + nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if end > start:
        _madvise()(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_HUGEPAGE)


def huge_pages_wanted() -> bool:
    """Whether new buffers ask for huge pages: ``RNNKIT_HUGEPAGES=1`` yes, ``=0`` no; unset, yes
    on Linux unless a virtio-balloon device reports free pages to its host (feature bit 5,
    ``VIRTIO_BALLOON_F_REPORTING``). Such a VM hands freed 2 MiB blocks back to the host, so every
    fresh huge page is faulted in again from it: on one, a B=64, T=256, I=256, H=512 LSTM training
    step took ~1.44 s in 4 runs of 5 with huge pages and a steady 0.67 s without (before buffers
    were cached)."""
    setting = os.environ.get("RNNKIT_HUGEPAGES")
    if setting in ("0", "1"):
        return setting == "1"
    return sys.platform.startswith("linux") and not _free_page_reporting()


def _free_page_reporting(root: Path = Path("/sys/bus/virtio/drivers/virtio_balloon")) -> bool:
    """Whether a virtio-balloon device here has free page reporting (feature bit 5) negotiated."""
    try:
        devices = list(root.glob("virtio*"))
        return any(len(bits := (d / "features").read_text().strip()) > 5 and bits[5] == "1" for d in devices)
    except OSError:
        return False


def _madvise():
    """libc's ``madvise`` where :func:`huge_pages_wanted`, else ``None``."""
    if not _libc:
        madvise = None
        if huge_pages_wanted() and sys.platform.startswith("linux"):
            try:
                madvise = ctypes.CDLL(None).madvise
                madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
            except (OSError, AttributeError):
                madvise = None
        _libc.append(madvise)
    return _libc[0]


def _limit_from_env() -> int:
    """``RNNKIT_BUFFER_CACHE_MB`` in bytes (default 1024 MiB; 0: no cache)."""
    value = os.environ.get("RNNKIT_BUFFER_CACHE_MB", "1024")
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = float("nan")
    if not megabytes >= 0:  # also nan
        raise ConfigError(f"RNNKIT_BUFFER_CACHE_MB={value!r}: expected a number of MiB >= 0 (0 turns the cache off)")
    return int(megabytes * (1 << 20))


_cache: BufferCache | None = None  # made on first use, so a bad RNNKIT_BUFFER_CACHE_MB is a ConfigError there


def _the_cache() -> BufferCache:
    global _cache
    if _cache is None:
        _cache = BufferCache(_limit_from_env())
    return _cache
