"""Where the benchmarks find the shared datasets.

The folder holding ``tinyshakespeare/``, ``sst2/``, ``multi30k/``, ``fsdd/``, ``jsb_chorales/``,
``sp500/`` and ``pendigits/``: ``--data DIR`` where a script has that option, else
``$RNNKIT_DATA``, else ``../shared/data`` beside the clone. A user's clone has no such folder, so
a missing dataset stops the script with one line saying where it looked and how to point it
elsewhere (exit status 2), before anything is trained or written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BESIDE_THE_CLONE = Path(__file__).resolve().parents[2] / "shared" / "data"


def default_root() -> Path:
    """``$RNNKIT_DATA`` if it is set, else ``../shared/data`` beside the clone."""
    return Path(os.environ.get("RNNKIT_DATA") or BESIDE_THE_CLONE)


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``: the shared data folder (default :func:`default_root`)."""
    parser.add_argument(
        "--data", type=Path, default=default_root(),
        help="folder holding the shared datasets (default: $RNNKIT_DATA, else ../shared/data beside the clone)",
    )  # fmt: skip


def require(root: str | os.PathLike, relative: str, what: str) -> Path:
    """``root / relative`` if it exists; otherwise print where ``what`` was looked for and exit 2."""
    path = Path(root) / relative
    if not path.exists():
        folder = relative.split("/")[0]
        print(
            f"{what} not found: no {path} (give --data DIR, the folder that holds {folder}/, or set RNNKIT_DATA)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return path
