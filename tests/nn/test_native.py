"""rnnkit.nn.native's huge-page buffers (its kernels are pinned in test_sequence and test_minrnn)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from rnnkit.nn import native


def anon_huge_kb(address: int) -> int:
    """AnonHugePages (kB) of the mapping of this process that holds ``address``."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(v, 16) for v in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


def test_with_the_switch_on_large_buffers_are_backed_by_huge_pages_where_the_kernel_allows(monkeypatch):
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not sys.platform.startswith("linux") or not thp.exists() or "[never]" in thp.read_text():
        pytest.skip("transparent huge pages are off or absent here: native.empty asks for nothing")
    monkeypatch.setenv("RNNKIT_HUGEPAGES", "1")
    monkeypatch.setattr(native, "_libc", [])  # look madvise up again, with the switch on
    like = torch.zeros(1)
    t = native.empty(like, 16 << 20 >> 2)  # 16 MiB of float32
    assert t.shape == (4 << 20,) and t.dtype == torch.float32
    t.fill_(1.0)  # first touch: faults the pages in
    assert anon_huge_kb(t.data_ptr() + (8 << 20)) >= 2048  # at least one 2 MiB page
    assert float(t.sum()) == 4 << 20


def test_small_buffers_and_the_switch_leave_allocation_alone(monkeypatch):
    like = torch.zeros(1, dtype=torch.float64)
    small = native.empty(like, 3, 4)
    assert small.shape == (3, 4) and small.dtype == torch.float64
    monkeypatch.setenv("RNNKIT_HUGEPAGES", "0")
    monkeypatch.setattr(native, "_libc", [])  # switched off: nothing is asked
    big = native.empty(like, 1 << 20)
    assert big.shape == (1 << 20,) and native._madvise() is None


def test_huge_pages_by_default_unless_the_vm_reports_free_pages_to_its_host(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNKIT_HUGEPAGES", raising=False)
    device = tmp_path / "virtio0"
    device.mkdir()
    (device / "features").write_text("0110010100000000\n")  # bit 5: free page reporting
    assert native._free_page_reporting(tmp_path)
    (device / "features").write_text("0110000100000000\n")
    assert not native._free_page_reporting(tmp_path)
    assert not native._free_page_reporting(tmp_path / "absent")
    monkeypatch.setattr(native, "_free_page_reporting", lambda: True)
    assert not native.huge_pages_wanted()
    monkeypatch.setattr(native, "_free_page_reporting", lambda: False)
    assert native.huge_pages_wanted() == sys.platform.startswith("linux")
    monkeypatch.setenv("RNNKIT_HUGEPAGES", "1")
    monkeypatch.setattr(native, "_free_page_reporting", lambda: True)
    assert native.huge_pages_wanted()
