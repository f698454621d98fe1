"""What the task modules share: reading a run back (task first, then weights) and its config sections' types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.tasks.common import (
    check_resumed_model,
    dataclass_from,
    load_task_run,
    resumed_run_config,
    resumed_section,
)
from rnnkit.train import read_run_config


@dataclass
class Section:
    size: int = 4
    rate: float = 0.5
    name: str = "gru"
    flag: bool = False
    shape: tuple[int, ...] = (1, 2)
    names: list[str] = field(default_factory=list)
    limit: int | None = None


def test_dataclass_from_takes_json_values_of_each_fields_type():
    section = dataclass_from(Section, {"size": 8, "rate": 1, "shape": [3, 4], "names": ["a"], "limit": None}, "f")
    assert (section.size, section.rate, section.shape, section.names, section.limit) == (8, 1, [3, 4], ["a"], None)
    assert dataclass_from(Section, {"limit": 3, "flag": True}, "f").limit == 3


@pytest.mark.parametrize(
    "values, message",
    [
        ({"size": "big"}, "size: expected int, got 'big'"),
        ({"size": 2.5}, "size: expected int, got 2.5"),
        ({"size": True}, "size: expected int, got True"),
        ({"rate": "0.5"}, "rate: expected float, got '0.5'"),
        ({"flag": "false"}, "flag: expected bool, got 'false'"),
        ({"shape": 3}, "shape: expected tuple, got 3"),
        ({"limit": "none"}, "limit: expected int or null, got 'none'"),
        ({"colour": 1}, "expected an object with keys from"),
    ],
)
def test_dataclass_from_names_the_field_of_a_hand_edited_value(values, message):
    with pytest.raises(CheckpointError, match=r"^config\.json: field 'model': ") as e:
        dataclass_from(Section, values, "config.json: field 'model'")
    assert message in str(e.value)


def test_another_tasks_run_is_named_before_its_missing_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"task": "lm"}))  # no checkpoints at all
    with pytest.raises(CheckpointError, match="a 'lm' run, expected a 'speech' run"):
        load_task_run(tmp_path, "speech")


@pytest.mark.parametrize(
    "content, message",
    [(b"\xff\xfe{}", "byte 0 is not UTF-8"), (b"[1, 2]", "a JSON list; expected an object"), (b"{", "not valid JSON")],
)
def test_a_run_config_that_is_not_a_json_object_is_one_checkpoint_error(tmp_path, content, message):
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_run_config(tmp_path)


def test_a_resumed_section_is_the_runs_own_but_for_options_given_with_another_value(tmp_path):
    saved = {"task": "video", "model": {"size": 16, "name": "lstm"}}
    given = Section(size=4, rate=0.25)  # size at its default: not given; rate given
    section = resumed_section(Section, saved, "model", given, tmp_path)
    assert (section.size, section.name, section.rate) == (16, "lstm", 0.25)
    with pytest.raises(ConfigError, match="a resumed run keeps them"):
        check_resumed_model(saved, Section(size=16), tmp_path)  # not the saved {"size": 16, "name": "lstm"}


def test_resuming_another_tasks_run_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"task": "lm"}))
    assert resumed_run_config(tmp_path, "lm")["task"] == "lm"
    with pytest.raises(ConfigError, match="is a 'lm' run; expected a `rnnkit music train` run"):
        resumed_run_config(tmp_path, "music")
