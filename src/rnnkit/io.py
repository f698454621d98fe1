"""Atomic file output: nothing rnnkit writes is ever half-written.

Every writer goes through a temporary file in the destination's folder, then ``os.replace``: a
crash or an error half way leaves the previous file (or none), never a truncated one. The file
gets the permissions a plain ``open`` would give (:func:`chmod_as_created`; ``mkstemp`` alone makes it
owner-only).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from rnnkit.errors import DataError


def chmod_as_created(path: str | os.PathLike) -> None:
    """Give ``path`` the permissions a plain ``open`` (a file) or ``mkdir`` (a folder) gives it:
    ``0o666`` or ``0o777`` less the umask. ``tempfile.mkstemp``/``mkdtemp`` (and safetensors'
    writer) make them owner-only, which would hide a run's files from the user's group."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error deleted.
    Missing parent folders are made; a ``path`` that is a folder is a :class:`DataError`.

    For writers that want a file name (``fig.savefig(tmp)``, a stream of ``f.write`` calls)::

        with atomic_path("out.bin") as tmp, open(tmp, "wb") as f:
            f.write(data)
    """
    path = Path(path)
    if path.is_dir():
        raise DataError("is a folder; expected the path of a file to write", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        chmod_as_created(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def path_error_text(e: OSError) -> str:
    """One line saying which path could not be made or written and why, in words: an existing
    file where a folder should be, a part of the path that is a file, or the system's reason."""
    if e.errno == errno.EEXIST and e.filename is not None and not os.path.isdir(e.filename):
        return f"{e.filename}: exists and is not a folder; expected a folder (or nothing) there"
    if e.errno == errno.ENOTDIR:
        return f"{e.filename}: a part of this path is a file, not a folder"
    return f"{e.filename}: {e.strerror or type(e).__name__}"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (UTF-8, non-ASCII kept) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported on first use.

    Importing it costs ~0.4 s, so no rnnkit module does at the top: every `rnnkit` command would
    pay for it, plotting or not.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs: Any) -> None:
    """Save a matplotlib figure as PNG atomically, then close it."""
    plt = pyplot()
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", **savefig_kwargs)
    finally:
        plt.close(fig)
