"""Checks shared by the experiment tests: PNG files and report.md."""

from __future__ import annotations

from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    """``path`` is a readable PNG image of a sensible size."""
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, f"{path}: shape {image.shape}"


def assert_report(run_dir: Path, *needles: str) -> str:
    """``report.md`` exists, has the command, a markdown table, links to plots that exist, and each needle."""
    text = (run_dir / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert "Command: `" in text
    assert "|---|" in text
    for link in [part.split(")")[0] for part in text.split("](")[1:]]:
        assert (run_dir / link).is_file(), f"report links to missing {link}"
        assert_png(run_dir / link)
    for needle in needles:
        assert needle in text, f"{needle!r} not in report.md"
    assert not list(run_dir.rglob("*.tmp")), "a temporary file was left behind"
    return text


def assert_benchmark(run_dir: Path, name: str) -> dict:
    """``benchmark.json`` is one object in the benchmarks/results schema, its figures numbers."""
    import json

    record = json.loads((run_dir / "benchmark.json").read_text())
    keys = {"name", "dataset", "split", "command", "git_commit", "machine", "wall_seconds", "metrics", "reference"}
    assert keys <= set(record), f"missing {keys - set(record)}"
    assert record["name"] == name and record["command"].startswith("rnnkit experiment")
    assert record["metrics"] and all(isinstance(v, (int, float)) or v is None for v in record["metrics"].values())
    assert all(isinstance(v, (int, float)) for v in record["reference"].values())
    return record
