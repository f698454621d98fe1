"""rnnkit.nn.buffers: the cache of large buffers and their huge pages (the kernels that fill them are
pinned in test_sequence, test_gru_sequence and test_minrnn)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn import buffers


def vm_flags(address: int) -> list[str]:
    """The ``VmFlags`` of this process's mapping that holds ``address`` (``hg``: madvise(MADV_HUGEPAGE))."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(v, 16) for v in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    return []


def test_with_the_switch_on_large_buffers_ask_the_kernel_for_huge_pages(monkeypatch):
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not sys.platform.startswith("linux") or not thp.exists() or "[never]" in thp.read_text():
        pytest.skip("transparent huge pages are off or absent here: buffers.empty asks for nothing")
    monkeypatch.setenv("RNNKIT_HUGEPAGES", "1")
    monkeypatch.setattr(buffers, "_libc", [])  # look madvise up again, with the switch on
    monkeypatch.setattr(buffers, "_cache", buffers.BufferCache(1 << 30))  # new storages, not cached ones
    like = torch.zeros(1)
    t = buffers.empty(like, 16 << 20 >> 2)  # 16 MiB of float32
    assert t.shape == (4 << 20,) and t.dtype == torch.float32
    t.fill_(1.0)  # first touch: faults the pages in, as 2 MiB pages where the kernel has them free
    assert "hg" in vm_flags(t.data_ptr() + (8 << 20))  # the advice; whether pages are free is the kernel's
    assert float(t.sum()) == 4 << 20


def test_small_buffers_and_the_switch_leave_allocation_alone(monkeypatch):
    like = torch.zeros(1, dtype=torch.float64)
    small = buffers.empty(like, 3, 4)
    assert small.shape == (3, 4) and small.dtype == torch.float64
    monkeypatch.setenv("RNNKIT_HUGEPAGES", "0")
    monkeypatch.setattr(buffers, "_libc", [])  # switched off: nothing is asked
    big = buffers.empty(like, 1 << 20)
    assert big.shape == (1 << 20,) and buffers._madvise() is None


def test_huge_pages_by_default_unless_the_vm_reports_free_pages_to_its_host(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNKIT_HUGEPAGES", raising=False)
    device = tmp_path / "virtio0"
    device.mkdir()
    (device / "features").write_text("0110010100000000\n")  # bit 5: free page reporting
    assert buffers._free_page_reporting(tmp_path)
    (device / "features").write_text("0110000100000000\n")
    assert not buffers._free_page_reporting(tmp_path)
    assert not buffers._free_page_reporting(tmp_path / "absent")
    monkeypatch.setattr(buffers, "_free_page_reporting", lambda: True)
    assert not buffers.huge_pages_wanted()
    monkeypatch.setattr(buffers, "_free_page_reporting", lambda: False)
    assert buffers.huge_pages_wanted() == sys.platform.startswith("linux")
    monkeypatch.setenv("RNNKIT_HUGEPAGES", "1")
    monkeypatch.setattr(buffers, "_free_page_reporting", lambda: True)
    assert buffers.huge_pages_wanted()


@pytest.fixture
def cache(monkeypatch) -> buffers.BufferCache:
    """A fresh cache of 64 MiB in place of the process's."""
    fresh = buffers.BufferCache(64 << 20)
    monkeypatch.setattr(buffers, "_cache", fresh)
    return fresh


MIB_FLOATS = (1 << 20) // 4  # float32 elements in 1 MiB


def test_a_freed_buffer_is_handed_out_again_and_a_referenced_one_never(cache):
    like = torch.zeros(1)
    a = buffers.empty(like, 2, MIB_FLOATS)  # (2, 262144): 2 MiB
    assert a.shape == (2, MIB_FLOATS) and a.is_contiguous() and a.dtype == torch.float32
    address = a.data_ptr()
    view = a[1]  # a view keeps the storage in use
    del a
    b = buffers.empty(like, 2, MIB_FLOATS)
    assert b.data_ptr() != address
    del view
    c = buffers.empty(like, 2 * MIB_FLOATS)  # the same size class, another shape
    assert c.data_ptr() == address and c.shape == (2 * MIB_FLOATS,)
    assert cache.info()["buffers"] == 2 and cache.info()["idle_bytes"] == 0


def test_a_buffer_saved_for_backward_is_not_reused_before_the_graph_is_freed(cache):
    x = torch.randn(2, MIB_FLOATS, requires_grad=True)
    buffer = buffers.empty(x, 2, MIB_FLOATS)
    buffer.copy_(x.detach() * 3)
    address = buffer.data_ptr()
    y = (x * buffer).sum()  # autograd saves buffer (the grad of x is buffer)
    del buffer
    other = buffers.empty(x, 2, MIB_FLOATS).fill_(-1.0)
    assert other.data_ptr() != address
    y.backward(retain_graph=True)
    first = x.grad.clone()
    del other
    again = buffers.empty(x, 2, MIB_FLOATS).fill_(-1.0)  # takes `other`'s storage, not the saved one
    assert again.data_ptr() != address
    x.grad = None
    y.backward()
    assert torch.equal(x.grad, first) and torch.equal(first, x.detach() * 3)
    del y, again
    assert buffers.empty(x, 2, MIB_FLOATS).data_ptr() in (address, cache._storages[-1].data_ptr())


def test_size_classes_round_up_by_at_most_an_eighth():
    for n in (1 << 20, (1 << 20) + 1, 3_000_001, 123_456_789, 1 << 30):
        capacity = buffers.size_class(n)
        assert n <= capacity <= n * 1.125 + 4096
    assert buffers.size_class(1_100_000) == buffers.size_class(1_150_000)  # nearby sizes share a class


def test_a_miss_evicts_idle_buffers_down_to_the_limit_and_empty_cache_releases_the_rest(monkeypatch):
    cache = buffers.BufferCache(3 << 20)  # 3 MiB of idle buffers at most
    monkeypatch.setattr(buffers, "_cache", cache)
    like = torch.zeros(1)
    held = [buffers.empty(like, n * MIB_FLOATS) for n in (1, 2, 4)]
    assert cache.info() == {"buffers": 3, "in_use_bytes": 7 << 20, "idle_bytes": 0, "limit_bytes": 3 << 20}
    del held
    assert cache.info()["idle_bytes"] == 7 << 20  # kept: nothing asked for another size yet
    extra = buffers.empty(like, 8 * MIB_FLOATS)  # a miss: idle ones go, oldest first
    assert cache.info()["idle_bytes"] == 0 and cache.info()["in_use_bytes"] == 8 << 20
    del extra
    buffers.empty_cache()
    assert cache.info()["buffers"] == 0


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RNNKIT_BUFFER_CACHE_MB", "16")
    assert buffers._limit_from_env() == 16 << 20
    monkeypatch.delenv("RNNKIT_BUFFER_CACHE_MB")
    assert buffers._limit_from_env() == 1024 << 20
    for bad in ("-1", "lots", "nan"):
        monkeypatch.setenv("RNNKIT_BUFFER_CACHE_MB", bad)
        with pytest.raises(ValueError, match="RNNKIT_BUFFER_CACHE_MB"):
            buffers._limit_from_env()


def test_with_no_cache_every_buffer_is_new(monkeypatch):
    monkeypatch.setattr(buffers, "_cache", buffers.BufferCache(0))
    like = torch.zeros(1)
    a = buffers.empty(like, 2 * MIB_FLOATS)
    assert buffers.cache_info()["buffers"] == 0 and a.shape == (2 * MIB_FLOATS,)


def test_training_steps_on_cached_buffers_give_the_numbers_of_the_first(cache):
    """Big enough that the LSTM's and GRU's sequence buffers are cached: the second and third
    steps run on the first step's storages and must give the same outputs and gradients."""
    torch.manual_seed(0)
    x = torch.randn(8, 64, 32)  # (B, T, I): gates (T, B, 4H) = 2 MiB
    for layer in (rnn.LSTM(32, 256, impl="loop"), rnn.LayerNormGRU(32, 256)):
        results = []
        for _ in range(3):
            layer.zero_grad()
            out, _ = layer(x)
            out.pow(2).sum().backward()
            results.append([out.detach().clone()] + [p.grad.clone() for p in layer.parameters()])
        assert cache.info()["buffers"] > 0
        for later in results[1:]:
            assert all(torch.equal(a, b) for a, b in zip(results[0], later, strict=True))


def test_threads_never_share_a_buffer(cache):
    like, clashes = torch.zeros(1), []

    def work(value: float) -> None:
        for _ in range(200):
            buffer = buffers.empty(like, MIB_FLOATS).fill_(value)
            if not bool((buffer == value).all()):  # another thread wrote into it
                clashes.append(value)

    threads = [threading.Thread(target=work, args=(float(k),)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clashes == [] and cache.info()["buffers"] <= 6  # each thread holds at most two at once


def test_a_buffer_moved_to_shared_memory_is_never_handed_out_again(cache):
    """torch.multiprocessing sends a CPU tensor by moving its storage to shared memory and keeps
    no reference to it: once the sender drops the tensor, the receiver still reads that memory,
    so the next call must not write its results there (before the fix it did)."""
    like = torch.zeros(1)
    sent = buffers.empty(like, 2 * MIB_FLOATS).fill_(1.0)
    sent.share_memory_()  # what a Queue.put of the tensor does
    address = sent.data_ptr()
    del sent  # the sender is done with it; the other process is not
    later = buffers.empty(like, 2 * MIB_FLOATS).fill_(2.0)
    assert later.data_ptr() != address and not later.untyped_storage().is_shared()
    assert cache.info()["buffers"] == 1  # the shared storage left the cache
