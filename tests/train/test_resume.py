"""Exact resume after SIGKILL and after SIGTERM (separate processes running tests/train/toy_train.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from rnnkit.train import read_metrics

SCRIPT = Path(__file__).with_name("toy_train.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def toy(run_dir: Path, *args: str) -> subprocess.Popen:
    argv = [sys.executable, str(SCRIPT), "--quiet", "--dropout", "0.2", "--checkpoint-every", "8", "--eval-every", "12"]
    return subprocess.Popen([*argv, "--run-dir", str(run_dir), *args], env=ENV, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 90) -> int:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode


def step_of(run_dir: Path, name: str = "last") -> int:
    return json.loads((run_dir / "checkpoints" / name / "meta.json").read_text())["step"]


def logged(run_dir: Path) -> list[tuple]:
    rows = read_metrics(run_dir)
    return [(r["kind"], r["step"], r.get("loss"), r.get("val_loss"), r.get("grad_norm")) for r in rows]


def test_resume_after_sigkill_and_sigterm_is_bit_identical(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    a = toy(straight, "--steps", "24")
    b = toy(stopped, "--steps", "24", "--kill-at-call", "19")  # SIGKILL after the checkpoint at step 16
    assert finish(a) == 0
    assert finish(b) == -signal.SIGKILL
    assert step_of(stopped) == 16
    assert max(r["step"] for r in read_metrics(stopped)) == 18  # it logged past the checkpoint

    assert finish(toy(stopped, "--resume", str(stopped), "--term-at-call", "3")) == 0  # SIGTERM in step 19
    assert step_of(stopped) == 19  # the step finished, `last` was saved, the process exited cleanly
    assert "interrupted (SIGTERM)" in (stopped / "report.md").read_text()
    assert finish(toy(stopped, "--resume", str(stopped))) == 0

    final_a = load_file(straight / "checkpoints/last/model.safetensors")
    final_b = load_file(stopped / "checkpoints/last/model.safetensors")
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert logged(straight) == logged(stopped)
    assert len(logged(straight)) == 12 + 2  # a train line every 2 steps, evaluations at 12 and 24
    assert len(json.loads((stopped / "config.json").read_text())["resumed"]) == 2
