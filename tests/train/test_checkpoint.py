"""Checkpoints: round trip, atomic replacement, truncated/missing files, malicious pickles."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import stat

import numpy as np
import pytest
import torch

from rnnkit.errors import CheckpointError
from rnnkit.train import load_weights_into
from rnnkit.train.checkpoint import (
    load_train_state,
    load_weights,
    read_meta,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def weights():
    return {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}


def test_round_trip(tmp_path):
    folder = save_checkpoint(tmp_path / "last", weights(), {"step": 3}, {"opt": {"lr": 0.1}, "t": torch.ones(2)})
    assert read_meta(folder)["step"] == 3
    assert torch.equal(load_weights(folder)["w"], weights()["w"])
    state = load_train_state(folder)
    assert state["opt"] == {"lr": 0.1} and torch.equal(state["t"], torch.ones(2))


def test_folder_and_files_get_the_permissions_of_a_plain_mkdir_and_open(tmp_path):
    umask = os.umask(0o022)  # mkdtemp and safetensors make owner-only ones whatever the umask
    try:
        folder = save_checkpoint(tmp_path / "last", weights(), {"step": 1}, {"t": torch.ones(1)})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {
        "model.safetensors": 0o644,
        "train_state.pt": 0o644,
        "meta.json": 0o644,
    }


def test_rng_state_round_trip_is_exact():
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(2))
    set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(2))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_refuses_non_finite_weights_and_keeps_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "last", weights(), {"step": 1})
    bad = {**weights(), "w": torch.tensor([1.0, float("nan")])}
    with pytest.raises(CheckpointError, match=r"non-finite values .*'w'"):
        save_checkpoint(tmp_path / "last", bad, {"step": 2})
    assert read_meta(tmp_path / "last")["step"] == 1
    assert os.listdir(tmp_path) == ["last"]  # no temporary leftovers


class CreatesFile:
    """Unpickling this object runs code: it creates the file at ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    folder = save_checkpoint(tmp_path / "last", weights(), {"step": 1}, {"x": 1})
    marker = tmp_path / "pwned"
    torch.save({"optimizer": CreatesFile(marker)}, folder / "train_state.pt")
    with pytest.raises(CheckpointError, match=r"train_state\.pt: refused"):
        load_train_state(folder)
    assert not marker.exists()
    # the same payload as a raw (non-zip) pickle is refused as well
    (folder / "train_state.pt").write_bytes(pickle.dumps(CreatesFile(marker), protocol=2))
    with pytest.raises(CheckpointError, match=r"train_state\.pt: refused"):
        load_train_state(folder)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.safetensors", "train_state.pt", "meta.json"])
def test_truncated_file_is_named_in_the_error(tmp_path, name):
    folder = save_checkpoint(tmp_path / "last", weights(), {"step": 1}, {"t": torch.ones(100)})
    path = folder / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    load = {"model.safetensors": load_weights, "train_state.pt": load_train_state, "meta.json": read_meta}[name]
    with pytest.raises(CheckpointError, match=f"{name}: .*(truncated|corrupt)"):
        load(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"version": 2}, r"meta\.json: field 'version': expected a format version from 1 to 1, found 2"),
        ({"version": "1"}, r"field 'version': .*found '1'"),
        ({"format": "other"}, r"field 'format': expected 'rnnkit-checkpoint'"),
    ],
)
def test_a_checkpoint_of_a_newer_format_or_another_kind_is_refused_naming_the_field(tmp_path, edit, message):
    folder = save_checkpoint(tmp_path / "last", weights(), {"step": 1})
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, **edit}))
    with pytest.raises(CheckpointError, match=message):
        read_meta(folder)


def test_a_meta_file_that_is_not_an_object_is_a_checkpoint_error(tmp_path):
    folder = save_checkpoint(tmp_path / "last", weights(), {"step": 1})
    (folder / "meta.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"meta\.json: a JSON list; expected an object"):
        read_meta(folder)


@pytest.mark.parametrize("name", ["model.safetensors", "train_state.pt", "meta.json"])
def test_missing_file_is_named_in_the_error(tmp_path, name):
    folder = save_checkpoint(tmp_path / "last", weights(), {"step": 1}, {"t": torch.ones(1)})
    (folder / name).unlink()
    load = {"model.safetensors": load_weights, "train_state.pt": load_train_state, "meta.json": read_meta}[name]
    with pytest.raises(CheckpointError, match=f"{name}: missing"):
        load(folder)
    with pytest.raises(CheckpointError, match="nowhere: checkpoint folder not found"):
        load(tmp_path / "nowhere")


def test_interrupted_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "last", weights(), {"step": 1}, {"t": torch.ones(1)})

    def dies_midway(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were stopped while writing

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last", {"w": torch.zeros(1)}, {"step": 2}, {"t": torch.zeros(1)})
    assert read_meta(tmp_path / "last")["step"] == 1
    assert torch.equal(load_weights(tmp_path / "last")["w"], weights()["w"])
    assert os.listdir(tmp_path) == ["last"]


def test_what_a_writer_killed_mid_write_left_is_removed_by_the_next_save(tmp_path):
    stale = tmp_path / ".last.k1ll3d.tmp"  # as tempfile.mkdtemp named it before the SIGKILL
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half of the weights")
    (tmp_path / ".best.k1ll3d.tmp").mkdir()  # another checkpoint's: its own save removes it
    save_checkpoint(tmp_path / "last", weights(), {"step": 2})
    assert sorted(os.listdir(tmp_path)) == [".best.k1ll3d.tmp", "last"]
    assert read_meta(tmp_path / "last")["step"] == 2


def test_writer_killed_between_the_two_renames_is_recovered(tmp_path):
    save_checkpoint(tmp_path / "last", weights(), {"step": 1}, {"t": torch.ones(1)})
    shutil.move(tmp_path / "last", tmp_path / ".last.old")  # the instant after the first rename
    assert read_meta(tmp_path / "last")["step"] == 1
    assert torch.equal(load_weights(tmp_path / "last")["b"], torch.ones(3))


def test_weights_that_do_not_fit_are_one_checkpoint_error_line_naming_each_misfit(tmp_path) -> None:
    model = torch.nn.Linear(3, 2)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    load_weights_into(model, good, tmp_path)  # fits: loads
    bad = {"weight": torch.zeros(2, 4), "extra": torch.zeros(1)}  # wrong shape, one extra, bias missing
    with pytest.raises(CheckpointError) as info:
        load_weights_into(model, bad, tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path}: the weights do not fit")
    for part in ('Unexpected key(s) in state_dict: "extra"', 'Missing key(s) in state_dict: "bias"', "weight"):
        assert part in message, message
