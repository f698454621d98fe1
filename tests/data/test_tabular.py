"""Tests of rnnkit.data.tabular: each format reads, each kind of bad input names file and line."""

from __future__ import annotations

import re

import pytest

from rnnkit.data.tabular import read_table
from rnnkit.errors import DataError


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_reads_tsv_csv_and_json_lines_alike(tmp_path) -> None:
    tsv = write(tmp_path, "a.tsv", 'label\tsentence\n1\tgood "film"\n\n0\tbad , really\n')
    csv = write(tmp_path, "a.csv", 'id,sentence,label\n7,"good ""film""",1\n8,"bad , really",0\n')
    jsonl = write(
        tmp_path, "a.jsonl", '{"sentence": "good \\"film\\"", "label": 1}\n{"sentence": "bad , really", "label": "0"}\n'
    )
    for path in (tsv, csv, jsonl):
        table = read_table(path)
        assert table.texts == ['good "film"', "bad , really"], path
        assert table.labels == ["1", "0"], path
    assert read_table(tsv).lines == [2, 4]  # the blank line 3 is skipped, line numbers kept


def test_custom_columns_and_texts_only(tmp_path) -> None:
    path = write(tmp_path, "b.tsv", "review\tstars\nfine\tfive\n")
    table = read_table(path, text_column="review", label_column="stars")
    assert (table.texts, table.labels) == (["fine"], ["five"])
    assert read_table(path, text_column="review", label_column=None).labels is None


def test_utf8_byte_order_mark_is_accepted(tmp_path) -> None:
    path = write(tmp_path, "bom.csv", "\ufeffsentence,label\nok,1\n".encode())
    assert read_table(path).texts == ["ok"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "missing.tsv",
            "label\ttext\n1\tgood\n",
            r"missing\.tsv:1: no column 'sentence'; the columns found are \['label', 'text'\]",
        ),
        ("fields.tsv", "label\tsentence\n1\tgood\n0\tbad\textra\n", r"fields\.tsv:3: found 3 fields, expected 2"),
        ("fields.csv", "label,sentence\n1,good\n0\n", r"fields\.csv:3: found 1 fields, expected 2"),
        ("emptytext.tsv", "label\tsentence\n1\tgood\n0\t   \n", r"emptytext\.tsv:3: empty 'sentence' field"),
        ("emptylabel.csv", "label,sentence\n,good\n", r"emptylabel\.csv:2: empty 'label' field"),
        ("empty.tsv", "", r"empty\.tsv: empty file"),
        ("blank.csv", "\n  \n", r"blank\.csv: empty file"),
        ("header_only.tsv", "label\tsentence\n", r"header_only\.tsv: no rows after the header"),
        (
            "latin1.tsv",
            "label\tsentence\n1\tgood\n0\tna\xefve\n".encode("latin-1"),
            r"latin1\.tsv:3: not UTF-8 text: byte 0xef",
        ),
        (
            "key.jsonl",
            '{"sentence": "a", "label": 1}\n{"text": "b", "label": 0}\n',
            r"key\.jsonl:2: no key 'sentence'; the keys found are \['label', 'text'\]",
        ),
        ("syntax.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b", \n', r"syntax\.jsonl:2: not valid JSON"),
        ("array.jsonl", '["a", 1]\n', r"array\.jsonl:1: found a JSON list, expected an object"),
        ("nested.jsonl", '{"sentence": "a", "label": [1]}\n', r"nested\.jsonl:1: 'label' is a JSON list"),
        ("notes.txt", "whatever\n", r"notes\.txt: cannot tell the format from the suffix '\.txt'"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, name: str, content: str | bytes, message: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=re.compile(re.escape(str(tmp_path)) + "/" + message)):
        read_table(path)


def test_missing_file_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="cannot read file"):
        read_table(tmp_path / "nope.tsv")


def test_spaces_around_a_label_do_not_make_another_label(tmp_path) -> None:
    csv = write(tmp_path, "a.csv", "sentence,label\ngood,pos\nfine, pos \nbad,neg\r\n")
    assert read_table(csv).labels == ["pos", "pos", "neg"]


def test_a_wanted_column_named_twice_is_an_error(tmp_path) -> None:
    path = write(tmp_path, "dup.tsv", "label\tsentence\tlabel\n1\tgood\t0\n")
    with pytest.raises(DataError, match=r"dup\.tsv:1: column 'label' appears twice in the header"):
        read_table(path)  # was: silently the first 'label' column
    assert read_table(path, label_column=None).texts == ["good"]
