"""Tests of rnnkit.data.text: reading UTF-8 corpora, the token file, TBPTT streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.text import (
    TokenStreams,
    iter_corpus,
    iter_text,
    list_text_files,
    open_token_file,
    slice_chars,
    token_dtype,
    write_token_file,
)
from rnnkit.data.vocab import CharVocab
from rnnkit.errors import DataError


def test_list_text_files_expands_folders_in_order_and_rejects_missing_or_empty(tmp_path) -> None:
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    for name in ("b.txt", "a.txt", "sub/c.txt", ".hidden.txt"):
        (tmp_path / "corpus" / name).write_text("x\n")
    single = tmp_path / "one.txt"
    single.write_text("y\n")
    files = list_text_files([single, tmp_path / "corpus"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "one.txt",
        "corpus/a.txt",
        "corpus/b.txt",
        "corpus/sub/c.txt",
    ]
    with pytest.raises(DataError, match=r"missing\.txt: no such file"):
        list_text_files([tmp_path / "missing.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder has no files"):
        list_text_files([tmp_path / "empty"])


def test_list_text_files_reads_a_folder_given_through_a_parent_or_hidden_path(tmp_path, monkeypatch) -> None:
    """Only hidden names inside the folder are skipped, not those on the way to it (``..``, ``~/.cache``)."""
    for folder in ("corpus", ".cache/corpus"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "a.txt").write_text("x\n")
        (tmp_path / folder / ".b.txt").write_text("x\n")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert list_text_files(["../corpus"]) == [Path("../corpus/a.txt")]
    assert list_text_files([tmp_path / ".cache" / "corpus"]) == [tmp_path / ".cache" / "corpus" / "a.txt"]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 1 << 20])
def test_iter_text_refuses_nul_bytes_naming_the_first_one(tmp_path, chunk_bytes) -> None:
    """All-zero files and UTF-16 text decode as UTF-8, but they are not text."""
    path = tmp_path / "bin.txt"
    path.write_bytes(bytes(64))
    with pytest.raises(DataError, match=r"bin\.txt: NUL byte at byte offset 0: a binary file"):
        list(iter_text(path, chunk_bytes))
    path.write_bytes("hé€ ".encode() + "ascii".encode("utf-16-le"))  # "a" is 0x61 0x00: NUL at byte 8
    with pytest.raises(DataError, match="NUL byte at byte offset 8"):
        list(iter_text(path, chunk_bytes))


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 1 << 20])
def test_iter_text_names_the_byte_offset_of_bad_utf8_whatever_the_chunking(tmp_path, chunk_bytes) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes("héllo wörld ".encode() + b"\xff" + b"tail")  # 0xff sits at byte 14
    with pytest.raises(DataError, match=r"bad.txt: not valid UTF-8 at byte offset 14 \(byte 0xff"):
        list(iter_text(path, chunk_bytes))
    path.write_bytes("ab€".encode()[:-1])  # a truncated 3-byte character at the end (offset 2)
    with pytest.raises(DataError, match="byte offset 2"):
        list(iter_text(path, chunk_bytes))
    path.write_text("wörld\n", encoding="utf-8")
    assert "".join(iter_text(path, chunk_bytes)) == "wörld\n"


def test_iter_text_rejects_an_empty_file(tmp_path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.txt: empty file"):
        list(iter_text(tmp_path / "empty.txt"))


def test_iter_corpus_yields_line_aligned_chunks_and_separates_files(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("first line\nsecond")  # no final newline
    (tmp_path / "b.txt").write_text("third\n")
    chunks = list(iter_corpus([tmp_path / "a.txt", tmp_path / "b.txt"], chunk_bytes=4))
    assert "".join(chunks) == "first line\nsecond\nthird\n"
    assert all(chunk.endswith("\n") for chunk in chunks)


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 1 << 16])
def test_iter_corpus_reads_windows_line_ends_as_newlines(tmp_path, chunk_bytes) -> None:
    """CRLF becomes LF wherever a chunk boundary falls (between the two, too); a lone CR stays."""
    (tmp_path / "w.txt").write_bytes(b"to be\r\nor not\r\n\r\nto\rbe\r")
    chunks = list(iter_corpus([tmp_path / "w.txt"], chunk_bytes=chunk_bytes))
    assert "".join(chunks) == "to be\nor not\n\nto\rbe\r\n"


def test_token_file_round_trips_through_a_memory_map_and_is_never_half_written(tmp_path) -> None:
    text = "to be or not to be\n" * 20
    vocab = CharVocab.build([text])
    info = write_token_file([text[:100], text[100:]], vocab.encode_array, tmp_path / "t.bin", token_dtype(len(vocab)))
    assert (info.count, info.chars, info.dtype) == (len(text), len(text), "uint16")
    ids, loaded = open_token_file(tmp_path / "t.bin")
    assert isinstance(ids, np.memmap) and loaded == info
    assert vocab.decode(ids.tolist()) == text

    def failing_chunks():
        yield text
        raise DataError("boom")

    with pytest.raises(DataError):
        write_token_file(failing_chunks(), vocab.encode_array, tmp_path / "u.bin", np.uint16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin", "t.bin.json"]
    assert token_dtype(70_000) == np.uint32


def test_token_streams_are_consecutive_chunks_of_contiguous_streams() -> None:
    tokens = np.arange(103, dtype=np.uint16)
    streams = TokenStreams(tokens, batch_size=4, seq_len=5, offset=2)  # L = (103 - 1 - 2) // 4 = 25
    assert len(streams) == 5 and streams.stream_len == 25
    xs, ys = zip(*streams, strict=True)
    x, y = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)  # (B, 25)
    expected = 2 + 25 * np.arange(4)[:, None] + np.arange(25)  # stream b starts at 2 + 25 b
    assert (x == expected).all() and (y == expected + 1).all()
    assert xs[0].dtype == ys[0].dtype == torch.int64
    assert TokenStreams.min_tokens(4, 5) == 21
    assert len(TokenStreams(np.arange(20), 4, 5)) == 0
    with pytest.raises(IndexError):
        streams[5]


def test_slice_chars_is_slicing_the_joined_text_streamed() -> None:
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("ab\ncé日"), size=200))
    cuts = np.sort(rng.integers(0, 200, size=12))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, 200], strict=True)]  # some empty
    for start, stop in [(0, 200), (0, 0), (5, 6), (37, 150), (150, None), (199, None), (200, None), (0, 500)]:
        assert "".join(slice_chars(iter(chunks), start, stop)) == text[start:stop], (start, stop)
    assert all(slice_chars(iter(chunks), 37, 150))  # no empty pieces


@pytest.mark.parametrize("chunk_bytes", [1, 2, 1 << 20])
def test_iter_text_drops_a_leading_byte_order_mark(tmp_path, chunk_bytes) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffhé\ufeff\n".encode())  # only the first BOM is a mark; the second is text
    assert "".join(iter_text(path, chunk_bytes)) == "hé\ufeff\n"
    assert "".join(iter_corpus([path, path], chunk_bytes)) == "hé\ufeff\nhé\ufeff\n"


def test_iter_text_of_a_byte_order_mark_alone_is_an_empty_file(tmp_path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(DataError, match=r"bom\.txt: empty file"):
        list(iter_text(path, 1))


def test_iter_text_names_a_missing_file(tmp_path) -> None:
    with pytest.raises(DataError, match=r"gone\.txt: cannot read file \(No such file"):
        list(iter_text(tmp_path / "gone.txt"))
