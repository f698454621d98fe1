"""Exact resume after SIGKILL, and SIGTERM saving a checkpoint and exiting cleanly (separate processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from rnnkit.train import read_metrics

SCRIPT = Path(__file__).with_name("toy_train.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def toy(run_dir: Path, *args: str) -> subprocess.Popen:
    argv = [sys.executable, str(SCRIPT), "--quiet", "--dropout", "0.2", "--checkpoint-every", "8", "--eval-every", "12"]
    return subprocess.Popen([*argv, "--run-dir", str(run_dir), *args], env=ENV, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 60) -> int:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode


def logged(run_dir: Path) -> list[tuple]:
    rows = read_metrics(run_dir)
    return [(r["kind"], r["step"], r.get("loss"), r.get("val_loss"), r.get("grad_norm")) for r in rows]


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    a = toy(straight, "--steps", "24")
    b = toy(killed, "--steps", "24", "--kill-at-call", "19")  # after the checkpoint at step 16
    assert finish(a) == 0
    assert finish(b) == -signal.SIGKILL
    assert json.loads((killed / "checkpoints/last/meta.json").read_text())["step"] == 16
    assert max(r["step"] for r in read_metrics(killed)) == 18  # logged past the checkpoint, then killed
    assert finish(toy(killed, "--resume", str(killed))) == 0

    final_a = load_file(straight / "checkpoints/last/model.safetensors")
    final_b = load_file(killed / "checkpoints/last/model.safetensors")
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert logged(straight) == logged(killed)
    assert len(logged(straight)) == 12 + 2  # a train line every 2 steps, evaluations at 12 and 24
    assert json.loads((killed / "config.json").read_text())["resumed"]


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = toy(run, "--steps", "400", "--sleep", "0.02")
    deadline = time.monotonic() + 60
    while not any(r["kind"] == "train" for r in read_metrics(run)) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 0
    meta = json.loads((run / "checkpoints/last/meta.json").read_text())
    assert 2 <= meta["step"] < 400
    assert "interrupted (SIGTERM)" in (run / "report.md").read_text()
    assert finish(toy(run, "--resume", str(run), "--steps", str(meta["step"] + 4), "--sleep", "0")) == 0
    assert json.loads((run / "checkpoints/last/meta.json").read_text())["step"] == meta["step"] + 4
