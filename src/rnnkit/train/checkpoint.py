"""Checkpoints that are never half-written and can never run code.

A checkpoint is a folder, ``<run>/checkpoints/<name>/`` (``last`` or ``best``)::

    model.safetensors   the weights (safetensors: plain tensors, no code)
    meta.json           step, epoch, metrics, the training config
    train_state.pt      optimizer, scheduler, RNG states, data position, carried TBPTT state,
                        read back with ``torch.load(weights_only=True)`` only

It is written under a temporary name and renamed into place. Replacing an existing checkpoint
moves the old one aside (``.<name>.old``) for the instant between two renames; a reader that
finds only the aside copy (the writer was killed in that instant) uses it. Weights that are not
finite are refused: a checkpoint always holds a model that can be trained on.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from rnnkit.errors import CheckpointError
from rnnkit.io import chmod_as_created

FORMAT = "rnnkit-checkpoint"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
STATE_FILE = "train_state.pt"


# ---------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states, as plain tensors and tuples."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- save


def weights_for_saving(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU copies (tied weights become two entries); refuse non-finite ones."""
    out = {}
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"refusing to save weights with non-finite values (parameter {name!r})")
        out[name] = tensor.detach().to("cpu", copy=True).contiguous()
    return out


def save_checkpoint(
    folder: str | Path,
    state_dict: dict[str, Tensor],
    meta: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (temporary folder, then rename into place).

    ``state_dict``: the model's weights. ``meta``: JSON-able facts (step, metrics, config).
    ``train_state``: tensors, numbers, strings, lists, tuples and dicts only (optimizer and
    scheduler state dicts, RNG states, data position). Returns the folder.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    weights = weights_for_saving(state_dict)
    _remove_stale_temporaries(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        if train_state is not None:
            torch.save(train_state, tmp / STATE_FILE)
        (tmp / META_FILE).write_text(json.dumps({"format": FORMAT, "version": VERSION, **meta}, indent=2) + "\n")
        for path in (tmp, *tmp.iterdir()):
            chmod_as_created(path)
        _fsync_folder_files(tmp)
        _swap_into_place(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete what earlier writers of ``folder`` killed mid-write left (``.<name>.*.tmp``): each
    would otherwise keep a copy of the weights on disk for good."""
    for stale in folder.parent.glob(f".{glob.escape(folder.name)}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def _fsync_folder_files(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def _aside(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.old"


def _swap_into_place(tmp: Path, folder: Path) -> None:
    """Rename ``tmp`` to ``folder``; an existing ``folder`` is moved aside first, then removed."""
    aside = _aside(folder)
    if folder.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(folder, aside)
    os.replace(tmp, folder)
    shutil.rmtree(aside, ignore_errors=True)


# ---------------------------------------------------------------- load


def resolve_checkpoint(folder: str | Path) -> Path:
    """``folder`` itself, or its moved-aside copy when a writer died between two renames."""
    folder = Path(folder)
    if folder.is_dir():
        return folder
    aside = _aside(folder)
    if aside.is_dir() and (aside / WEIGHTS_FILE).exists():
        return aside
    raise CheckpointError(f"{folder}: checkpoint folder not found")


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The checkpoint's ``meta.json`` (checked to be an rnnkit checkpoint)."""
    path = resolve_checkpoint(folder) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; expected an rnnkit checkpoint folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON, the file is truncated or corrupt ({e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: a JSON {type(meta).__name__}; expected an object with 'format' {FORMAT!r}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: field 'format': expected {FORMAT!r}, found {meta.get('format')!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise CheckpointError(
            f"{path}: field 'version': expected a format version from 1 to {VERSION}, found {version!r} "
            "(a checkpoint from a newer rnnkit? upgrade rnnkit to read it)"
        )
    return meta


def load_weights(folder: str | Path, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The checkpoint's weights (a state dict) from ``model.safetensors``."""
    path = resolve_checkpoint(folder) / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(f"{path}: missing; expected the checkpoint's weights")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read weights, the file is truncated or corrupt ({e})") from None


def load_train_state(folder: str | Path) -> dict[str, Any]:
    """The checkpoint's training state, loaded with ``torch.load(weights_only=True)``.

    A file that would need to run code to load (any pickled object other than tensors and plain
    containers) is refused with :class:`CheckpointError`, before anything in it runs.
    """
    path = resolve_checkpoint(folder) / STATE_FILE
    if not path.exists():
        raise CheckpointError(f"{path}: missing; expected the checkpoint's training state")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: refused, the file holds objects that would run code when loaded ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read training state, the file is truncated or corrupt ({e})") from None
