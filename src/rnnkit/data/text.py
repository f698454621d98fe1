"""Plain UTF-8 text for language modeling: reading, a memory-mapped token file, TBPTT streams.

* :func:`list_text_files` expands the user's paths (files, or folders of them) and checks they exist.
* :func:`iter_corpus` streams the text of those files in line-aligned chunks, decoding UTF-8
  incrementally: an invalid byte raises :class:`~rnnkit.errors.DataError` naming the file and
  the byte offset; an empty file raises too. Memory use does not grow with the corpus.
* :func:`slice_chars` cuts such a stream at character offsets (the training/validation split).
* :func:`write_token_file` tokenizes such a stream once into a flat binary file of token ids
  (``uint16`` or ``uint32``, as nanoGPT's ``train.bin``), written to a temp name and renamed;
  :func:`open_token_file` maps it back without reading it into memory.
* :class:`TokenStreams` cuts a token array into ``B`` contiguous streams read in consecutive
  chunks of ``T`` tokens, so a model can carry its state from one chunk to the next
  (truncated backpropagation through time).
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

from rnnkit.errors import DataError
from rnnkit.io import atomic_path, atomic_write_bytes

CHUNK_BYTES = 1 << 20  # bytes read at a time; the memory a pass over any corpus needs


def list_text_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The files named by ``paths``, in order; a folder contributes its files (recursively,
    sorted by path, hidden ones skipped). Raises :class:`DataError` for a missing path or an
    empty folder."""
    if not paths:
        raise DataError("no text files given: expected at least one file or folder")
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            if not found:
                raise DataError("folder has no files: expected UTF-8 text files in it", path=str(path))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError("no such file or folder", path=str(path))
    return files


def _hidden(relative: Path) -> bool:
    """Whether a file inside a given folder (``relative`` to it) is hidden or in a hidden folder;
    the folder's own path (``..``, ``~/.cache/...``) does not count."""
    return any(part.startswith(".") for part in relative.parts)


def iter_text(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """Decode one UTF-8 file in chunks of about ``chunk_bytes`` bytes.

    A byte-order mark at the start of the file is dropped (it is not part of the text). Raises
    :class:`DataError` naming the file and the byte offset of the first byte that is not UTF-8 or
    is a NUL byte (a binary file: all zeros, or UTF-16, decode as UTF-8 but are not text), or
    saying that the file is empty (no characters, a byte-order mark aside) or cannot be read.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file decoded so far
    at_start, yielded = True, False  # nothing decoded yet (a BOM there is dropped); nothing yielded yet
    with _open_binary(path) as f:
        while True:
            data = f.read(chunk_bytes)
            final = not data
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as e:
                pending = len(decoder.getstate()[0])  # bytes of the previous chunk not yet decoded
                where = offset - pending + e.start
                raise DataError(
                    f"not valid UTF-8 at byte offset {where} (byte 0x{e.object[e.start]:02x}: {e.reason}); "
                    "expected a UTF-8 text file",
                    path=str(path),
                ) from None
            if at_start and text:
                text, at_start = text.removeprefix("\ufeff"), False
            if final and not (yielded or text):
                raise DataError("empty file: expected UTF-8 text", path=str(path))
            nul = text.find("\0")
            if nul >= 0:
                where = offset - len(decoder.getstate()[0]) + len(data) - len(text[nul:].encode())
                raise DataError(
                    f"NUL byte at byte offset {where}: a binary file (or UTF-16)? expected UTF-8 text", path=str(path)
                )
            offset += len(data)
            if text:
                yielded = True
                yield text
            if final:
                return


def _open_binary(path: str | os.PathLike) -> BinaryIO:
    """``open(path, "rb")``, or a :class:`DataError` naming the file and why it cannot be read."""
    try:
        return open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror}); expected a UTF-8 text file", path=str(path)) from None


def iter_corpus(files: Sequence[str | os.PathLike], chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The text of ``files`` in order, as chunks that end at a line break where possible.

    A file that does not end with a newline is followed by one, so the last line of one file
    never runs into the first line of the next. Windows line ends (``\r\n``) become ``\n``, as
    Python's text mode reads them (a lone ``\r`` is kept).
    """
    for path in files:
        carry, cr = "", ""  # cr: a chunk's last "\r", held back: the next chunk may begin with its "\n"
        for raw in iter_text(path, chunk_bytes):
            raw = cr + raw
            cr = "\r" if raw.endswith("\r") else ""
            text = carry + (raw[:-1] if cr else raw).replace("\r\n", "\n")
            cut = text.rfind("\n") + 1
            if cut == 0 and len(text) < 4 * chunk_bytes:
                carry = text  # no line break yet: wait for one (bounded by 4 chunks)
                continue
            cut = cut or len(text)
            carry = text[cut:]
            yield text[:cut]
        carry += cr
        if carry:
            yield carry if carry.endswith("\n") else carry + "\n"


def slice_chars(chunks: Iterable[str], start: int, stop: int | None = None) -> Iterator[str]:
    """The characters ``start`` to ``stop`` (``None``: the end) of the text a stream of chunks
    makes, as chunks: ``"".join(slice_chars(c, a, b)) == "".join(c)[a:b]``, streamed."""
    position = 0  # characters of the text before `text`
    for text in chunks:
        if stop is not None and position >= stop:
            return
        piece = text[max(start - position, 0) : None if stop is None else stop - position]
        position += len(text)
        if piece:
            yield piece


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id of a ``vocab_size`` vocabulary."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


@dataclass
class TokenFileInfo:
    """What a token file holds: ``count`` ids of ``dtype`` from ``chars`` characters of text."""

    count: int
    chars: int
    dtype: str

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, json.dumps(asdict(self)).encode())

    @classmethod
    def load(cls, path: Path) -> TokenFileInfo:
        return cls(**json.loads(path.read_text()))


def write_token_file(
    chunks: Iterable[str], encode: Callable[[str], np.ndarray], path: str | os.PathLike, dtype: np.dtype
) -> TokenFileInfo:
    """Tokenize a stream of text chunks into the flat binary file ``path`` (ids of ``dtype``).

    Written to a temp file, renamed into place at the end: an error half way (bad UTF-8 in the
    fifth file) leaves nothing behind. Returns the counts; also written to ``path`` + ``.json``.
    """
    path = Path(path)
    count = chars = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for text in chunks:
            ids = encode(text).astype(dtype)  # (n,)
            f.write(ids.tobytes())
            count += len(ids)
            chars += len(text)
    info = TokenFileInfo(count=count, chars=chars, dtype=np.dtype(dtype).name)
    info.save(path.with_name(path.name + ".json"))
    return info


def open_token_file(path: str | os.PathLike) -> tuple[np.ndarray, TokenFileInfo]:
    """Map a token file written by :func:`write_token_file` (never read whole): ``(ids (N,), info)``."""
    path = Path(path)
    info = TokenFileInfo.load(path.with_name(path.name + ".json"))
    if info.count == 0:
        return np.zeros(0, dtype=info.dtype), info
    # Copy-on-write: the file is never modified, and torch.from_numpy accepts the array.
    return np.memmap(path, dtype=info.dtype, mode="c", shape=(info.count,)), info


class TokenStreams:
    """``B`` contiguous streams over a token array, read in consecutive chunks of ``T`` tokens.

    Stream ``b`` is ``tokens[offset + b * L : offset + (b + 1) * L + 1]`` with
    ``L = (N - 1 - offset) // B``; chunk ``i`` of every stream is batch ``i``, so the state a model
    ends chunk ``i`` with is the right initial state for chunk ``i + 1``. Only the ``B * (T + 1)``
    ids of one batch are read at a time, so ``tokens`` may be a memory map of any size.

    Args:
        tokens: ``(N,)`` token ids (a numpy array or memmap).
        batch_size: ``B``, the number of streams.
        seq_len: ``T``, tokens per chunk.
        offset: tokens skipped at the start (a different ``offset`` each epoch shifts the chunk
            boundaries, so the model does not always see the same ones); ``0 <= offset < T``.

    ``streams[i]`` returns ``(x, y)``, both ``(B, T)`` int64, ``y`` the next token after each ``x``.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, offset: int = 0) -> None:
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len: expected >= 1, got {batch_size} and {seq_len}")
        if not 0 <= offset < max(seq_len, 1):
            raise ValueError(f"offset: expected 0 <= offset < seq_len={seq_len}, got {offset}")
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.stream_len = max(len(tokens) - 1 - offset, 0) // batch_size  # L
        self.starts = offset + self.stream_len * np.arange(batch_size)  # (B,)

    @staticmethod
    def min_tokens(batch_size: int, seq_len: int) -> int:
        """Fewest tokens that give one full batch: ``B * T + 1``."""
        return batch_size * seq_len + 1

    def __len__(self) -> int:
        return self.stream_len // self.seq_len

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"chunk {index} out of range (0..{len(self) - 1})")
        first = self.starts + index * self.seq_len  # (B,)
        ids = self.tokens[first[:, None] + np.arange(self.seq_len + 1)]  # (B, T+1)
        chunk = torch.from_numpy(ids.astype(np.int64))
        return chunk[:, :-1], chunk[:, 1:]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self[i] for i in range(len(self)))
