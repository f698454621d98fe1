"""Tests of rnnkit.tasks.lm: training on a few KB of text, generation, evaluation, resume, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.cli import main
from rnnkit.data.vocab import CharVocab
from rnnkit.tasks import lm
from rnnkit.train import TrainConfig
from rnnkit.train.checkpoint import load_weights, read_meta

# About 6 KB of English (Python's own docs, as the demo uses): real text, so a model that learns
# anything beyond character frequencies beats the unigram entropy.
TEXT = __import__("pydoc_data.topics", fromlist=["topics"]).topics["assert"] * 3
TEXT += __import__("pydoc_data.topics", fromlist=["topics"]).topics["if"] * 4


def unigram_entropy(text: str) -> float:
    """Nats per character of the best model that ignores context."""
    counts, n = Counter(text), len(text)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def tiny_config(tmp_path: Path, steps: int = 80, **train) -> lm.Config:
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(TEXT, encoding="utf-8")
    options = dict(steps=steps, batch_size=8, lr=1e-2, schedule="cosine", eval_every=40, log_every=10, quiet=True)
    return lm.Config(
        data=lm.DataConfig(files=[str(corpus)], seq_len=32, val_fraction=0.1),
        model=lm.ModelConfig(cell="lstm", layers=1, hidden=64, dropout=0.0),
        train=TrainConfig(**{**options, **train}, run_dir=str(tmp_path / "run")),
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    return lm.train(tiny_config(tmp_path_factory.mktemp("lm")))


def test_training_beats_the_unigram_entropy_and_writes_the_run_folder(trained_run: Path) -> None:
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    train_losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert evals[-1]["val_loss"] < unigram_entropy(TEXT) - 0.3
    assert train_losses[-1] < train_losses[0] - 0.5
    assert evals[-1]["val_bpc"] == pytest.approx(evals[-1]["val_loss"] / math.log(2), rel=1e-6)
    config = json.loads((trained_run / "config.json").read_text())
    assert config["task"] == "lm" and config["model"]["hidden"] == 64 and config["data"]["seq_len"] == 32
    for name in ("report.md", "plots/loss.png", "data/vocab.json", "data/train.bin", "checkpoints/best"):
        assert (trained_run / name).exists(), name
    umask = os.umask(0)
    os.umask(umask)
    for folder in ("data", "checkpoints/best", "checkpoints/last", "plots"):  # readable as the user's other files
        assert stat.S_IMODE((trained_run / folder).stat().st_mode) == 0o777 & ~umask, folder
    assert stat.S_IMODE((trained_run / "checkpoints/best/model.safetensors").stat().st_mode) == 0o666 & ~umask
    assert "## Sample" in (trained_run / "report.md").read_text()


def test_seeded_generation_is_deterministic_and_uses_only_vocabulary_characters(trained_run: Path) -> None:
    vocab = CharVocab.load(trained_run / "data" / "vocab.json")
    first = "".join(lm.generate(trained_run, "The ", max_new=120, seed=7, top_k=20, top_p=0.95))
    again = "".join(lm.generate(trained_run, "The ", max_new=120, seed=7, top_k=20, top_p=0.95))
    other = "".join(lm.generate(trained_run, "The ", max_new=120, seed=8, top_k=20, top_p=0.95))
    assert first == again and first != other
    assert len(first) == 120 and set(first) <= set(vocab.chars)


def test_generation_steps_once_per_token_and_matches_whole_sequence_recomputation(trained_run: Path) -> None:
    model, vocab = lm.load_model(trained_run)
    prompt = vocab.encode("The ")
    lengths: list[int] = []
    hook = model.rnn.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
    greedy = list(lm.generate_ids(model, prompt, max_new=30, temperature=0))
    hook.remove()
    assert lengths == [len(prompt)] + [1] * 30  # the prompt once, then one step per token (O(1) each)
    with torch.no_grad():  # the same tokens, recomputed from scratch over the whole sequence
        logits, _ = model(torch.tensor([prompt + greedy[:-1]]))  # (1, P + 29, V)
    assert logits[0, len(prompt) - 1 :].argmax(-1).tolist() == greedy


def test_a_reader_that_stops_early_ends_generation_quietly(trained_run: Path) -> None:
    argv = [sys.executable, "-m", "rnnkit", "lm", "generate", "--run", str(trained_run), "--max-new", "3000"]
    argv += ["--num-samples", "40"]  # ~120 KB: more than a pipe holds, so a write comes after the close
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)  # as `rnnkit lm generate … | head -c 100`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 128 + signal.SIGPIPE, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_sample_next_respects_top_k_and_top_p() -> None:
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    generator = torch.Generator().manual_seed(0)
    assert {lm.sample_next(logits, 1.0, top_k=2, generator=generator) for _ in range(200)} == {0, 1}
    # softmax: 0.64, 0.24, 0.09, ...: the nucleus of 0.8 is the first two tokens
    assert {lm.sample_next(logits, 1.0, top_p=0.8, generator=generator) for _ in range(200)} == {0, 1}
    assert lm.sample_next(logits, 0.0) == 0


def test_sample_next_edge_cases_tiny_temperature_ties_and_the_nucleus_boundary() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    model = lm.LanguageModel(5, lm.ModelConfig(layers=1, hidden=8, dropout=0.0))
    model(torch.zeros(2, 30, dtype=torch.long))  # rnnkit's native kernel may leave denormals flushed to zero
    assert lm.sample_next(logits, 1e-40, generator=generator) == 0  # near-greedy (was inf - inf or 0 / 0: NaN)
    assert lm.sample_next(logits, 1e-40, top_k=2, top_p=0.5, generator=generator) == 0
    # top_k larger than the vocabulary and top_p=1 change nothing: every token can come
    seen = {lm.sample_next(torch.zeros(5), 1.0, top_k=50, top_p=1.0, generator=generator) for _ in range(200)}
    assert seen == set(range(5))
    # top_k keeps exactly k tokens, even among equal logits
    seen = {lm.sample_next(torch.tensor([1.0, 1.0, 1.0, 0.0]), 1.0, top_k=2, generator=generator) for _ in range(200)}
    assert len(seen) == 2
    # two tokens of probability 0.5: the smallest set that reaches top_p=0.5 is one token
    seen = {lm.sample_next(torch.zeros(2), 1.0, top_p=0.5, generator=generator) for _ in range(100)}
    assert len(seen) == 1


def test_unseeded_generation_leaves_torch_global_random_state_alone() -> None:
    vocab = CharVocab(list("abcde"))
    model = lm.LanguageModel(len(vocab), lm.ModelConfig(layers=1, hidden=8, dropout=0.0))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    text = "".join(lm.generate_text(model, vocab, [0], max_new=5, seed=None))
    assert len(text) == 5 and torch.equal(torch.rand(3), expected)


def test_evaluation_scores_every_target_once_with_the_state_carried(trained_run: Path) -> None:
    model, vocab = lm.load_model(trained_run)
    ids = np.asarray(vocab.encode(TEXT[:1000]), dtype=np.uint16)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(ids.astype(np.int64))[None, :-1])  # (1, 999, V)
    whole = F.cross_entropy(logits[0], torch.from_numpy(ids[1:].astype(np.int64))).item()
    # one stream, 24 chunks of 40 and a tail of 39: the same as one pass over the whole text
    assert lm.evaluate_tokens(model, ids, 1000, batch_size=1, seq_len=40)["loss"] == pytest.approx(whole, rel=1e-5)
    # 4 streams of L = 249 (6 chunks of 37, tails of 27), then the last 4 targets continue stream 3
    ids64 = torch.from_numpy(ids.astype(np.int64))
    nats, state = 0.0, None
    with torch.no_grad():
        for b in range(4):
            logits, state = model(ids64[None, b * 249 : (b + 1) * 249])  # (1, 249, V), from a zero state
            nats += F.cross_entropy(logits[0], ids64[b * 249 + 1 : (b + 1) * 249 + 1], reduction="sum").item()
        logits, _ = model(ids64[None, 996:999], state)
        nats += F.cross_entropy(logits[0], ids64[997:], reduction="sum").item()
    streamed = lm.evaluate_tokens(model, ids, 1000, batch_size=4, seq_len=37)["loss"]
    assert streamed == pytest.approx(nats / 999, rel=1e-5)


def test_eval_command_reports_loss_perplexity_and_bits_per_character(trained_run: Path, tmp_path, capsys) -> None:
    (tmp_path / "test.txt").write_text(TEXT[-2000:], encoding="utf-8")
    assert main(["lm", "eval", "--run", str(trained_run), "--data", str(tmp_path / "test.txt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]), rel=1e-4)
    assert result["loss"] < unigram_entropy(TEXT)


def test_eval_names_the_line_and_column_of_an_unknown_character_and_checks_its_options(
    trained_run: Path, tmp_path, monkeypatch, capsys
) -> None:
    (tmp_path / "t.txt").write_text("The if\nand \x01 assert\n", encoding="utf-8")
    argv = ["lm", "eval", "--run", str(trained_run), "--data", "t.txt"]
    err = _run_cli(argv, tmp_path, monkeypatch, capsys)
    assert err.startswith("rnnkit: error: t.txt:2: column 5: character '\\x01' is not in the model's vocabulary")
    (tmp_path / "t.txt").write_text(TEXT[:500], encoding="utf-8")
    for option, message in ((["--seq-len", "0"], "seq_len"), (["--batch-size", "-3"], "batch_size")):
        err = _run_cli([*argv, *option], tmp_path, monkeypatch, capsys)
        assert err == f"rnnkit: error: {message}: expected an integer >= 1, got {option[1]}"


def test_generate_command_streams_num_samples_and_drops_unknown_prompt_characters(trained_run: Path, capsys) -> None:
    argv = ["lm", "generate", "--run", str(trained_run), "--prompt", "The ☃", "--max-new", "40", "--seed", "3"]
    assert main([*argv, "--num-samples", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("The ☃") == 2 and "dropped" in captured.err and "☃" in captured.err
    assert main(argv) == 0
    assert capsys.readouterr().out.split("\n")[0] in captured.out  # sample 1 again: same seed, same text


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bf16_autocast_trains_and_evaluates_with_the_state_carried(tmp_path, cell) -> None:
    config = tiny_config(tmp_path, steps=12, eval_every=6, precision="bf16")
    config.model.cell = cell
    run = lm.train(config)  # the evaluation streams the state from chunk to chunk under autocast
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["val_loss"] for r in evals if r["kind"] == "eval"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_resuming_a_run_continues_it_exactly(tmp_path) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    straight = lm.train(tiny_config(tmp_path / "a", steps=24, eval_every=12, schedule="constant"))
    config = tiny_config(tmp_path / "b", steps=12, eval_every=12, schedule="constant")
    first_half = lm.train(config)
    assert read_meta(first_half / "checkpoints" / "last")["step"] == 12
    config.train.steps, config.train.resume = 24, str(first_half)
    resumed = lm.train(config)
    assert resumed == first_half and read_meta(resumed / "checkpoints" / "last")["step"] == 24
    a, b = load_weights(straight / "checkpoints" / "last"), load_weights(resumed / "checkpoints" / "last")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_resuming_takes_the_runs_own_data_and_model_from_python_and_the_command_line(tmp_path) -> None:
    """``--resume RUN`` (and ``lm.train`` with only ``train.resume``) continue the run with its own
    sections: the Python call used to take the caller's (default) data and model."""
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    straight = lm.train(tiny_config(tmp_path / "a", steps=24, eval_every=12, schedule="constant"))
    want = load_weights(straight / "checkpoints" / "last")
    first = tiny_config(tmp_path / "b", steps=12, eval_every=12, schedule="constant")
    run = lm.train(first)
    train = TrainConfig(**{**first.train.to_dict(), "steps": 24, "resume": str(run), "run_dir": None})
    assert lm.train(lm.Config(train=train)) == run  # default data and model sections
    got = load_weights(run / "checkpoints" / "last")
    assert all(torch.allclose(want[k], got[k], atol=1e-6) for k in want)
    run = lm.train(tiny_config(tmp_path / "c", steps=12, eval_every=12, schedule="constant"))
    assert main(["lm", "train", "--resume", str(run), "--steps", "24"]) == 0
    got = load_weights(run / "checkpoints" / "last")
    assert all(torch.allclose(want[k], got[k], atol=1e-6) for k in want)


def test_a_model_or_data_option_given_with_resume_is_refused_not_ignored(tmp_path, capsys) -> None:
    run = lm.train(tiny_config(tmp_path, steps=4, eval_every=4, schedule="constant"))
    saved = json.loads((run / "config.json").read_text())
    hidden = saved["model"]["hidden"]
    assert main(["lm", "train", "--resume", str(run), "--steps", "8", "--hidden", str(hidden + 8)]) == 2
    err = capsys.readouterr().err
    assert f"hidden: {run} was trained with {hidden}, not {hidden + 8}" in err and "leave --hidden out" in err
    assert json.loads((run / "config.json").read_text()) == saved  # nothing written
    assert main(["lm", "train", "--resume", str(run), "--steps", "8", "--hidden", str(hidden)]) == 0  # same value: fine


def test_minutes_gives_four_evaluations_the_last_at_the_end(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lm, "steps_for_minutes", lambda model, corpus, config: 10)
    config = tiny_config(tmp_path, eval_every=0)
    config.minutes, config.train.steps = 0.01, None
    config.train.epochs = 1
    run = lm.train(config)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [3, 6, 9, 10]  # was 2, 4, 6, 8, 10


def test_the_validation_fraction_is_cut_at_a_character_and_bpe_never_sees_it(tmp_path) -> None:
    train_text, val_text = "the cat sat on a mat. " * 40, "xyz qvw xyz qvw " * 10  # 880 + 160 characters
    (tmp_path / "t.txt").write_text(train_text + val_text, encoding="utf-8")  # + a final newline: 1041
    for level in ("char", "subword"):
        config = lm.DataConfig(files=[str(tmp_path / "t.txt")], val_fraction=1 - 880 / 1041, seq_len=8, level=level)
        config.vocab_size = 300
        corpus = lm.prepare_corpus(config, tmp_path / level, batch_size=4)
        assert (corpus.train_chars, corpus.val_chars) == (880, 161)  # exact, for subwords too
        assert corpus.vocab.decode(corpus.train.tolist()) == train_text
        assert corpus.vocab.decode(corpus.val.tolist()) == val_text + "\n"
    merged = [t for t in corpus.vocab.tokenizer.get_vocab() if len(t) > 1]
    assert merged and not [t for t in merged if set(t) & set("xyzqvw")]  # no merge learned on validation text


SHAKESPEARE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="../shared/data (tiny Shakespeare) is not here")
def test_tiny_shakespeare_splits_as_nanogpt_does(tmp_path) -> None:
    corpus = lm.prepare_corpus(lm.DataConfig(files=[str(SHAKESPEARE)]), tmp_path / "data", batch_size=64)
    text = SHAKESPEARE.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)  # nanoGPT's shakespeare_char/prepare.py
    assert (len(corpus.train), len(corpus.val), len(corpus.vocab)) == (1_003_854, 111_540, 65)
    assert corpus.vocab.decode(corpus.train[-50:].tolist()) == text[cut - 50 : cut]
    assert corpus.vocab.decode(corpus.val[:50].tolist()) == text[cut : cut + 50]


def test_subword_level_trains_and_generates(tmp_path) -> None:
    config = tiny_config(tmp_path, steps=20, eval_every=0)
    config.data.level, config.data.vocab_size, config.data.seq_len = "subword", 300, 16
    run = lm.train(config)
    assert (run / "data" / "tokenizer.json").is_file()
    text = "".join(lm.generate(run, "The ", max_new=30, seed=1))
    assert text and "\ufffd" not in text


# ---------------------------------------------------------------- bad input: one line, status 2, nothing written


def _run_cli(argv: list[str], cwd: Path, monkeypatch, capsys) -> str:
    monkeypatch.chdir(cwd)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit: error: ") and "\n" not in err
    assert not (cwd / "runs").exists()
    return err


def test_training_on_a_file_that_is_not_utf8_names_the_file_and_byte_offset(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "latin1.txt").write_bytes(("word " * 100).encode() + "café".encode("latin-1"))
    err = _run_cli(["lm", "train", "--data", "latin1.txt"], tmp_path, monkeypatch, capsys)
    assert "latin1.txt" in err and "byte offset 503" in err


def test_training_on_an_empty_file_or_too_short_a_text_fails_cleanly(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    assert "empty file" in _run_cli(["lm", "train", "--data", "empty.txt"], tmp_path, monkeypatch, capsys)
    (tmp_path / "short.txt").write_text("a short text\n" * 20)
    err = _run_cli(["lm", "train", "--data", "short.txt"], tmp_path, monkeypatch, capsys)
    assert "short.txt" in err and "too short" in err and "--batch-size" in err
    assert "no such file" in _run_cli(["lm", "train", "--data", "missing.txt"], tmp_path, monkeypatch, capsys)


def test_training_on_a_binary_file_or_a_folder_given_through_dotdot(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "zeros.txt").write_bytes(bytes(20_000))  # valid UTF-8, but not text
    err = _run_cli(["lm", "train", "--data", "zeros.txt"], tmp_path, monkeypatch, capsys)
    assert err == "rnnkit: error: zeros.txt: NUL byte at byte offset 0: a binary file (or UTF-16)? expected UTF-8 text"
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "t.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    argv = ["lm", "train", "--data", "../corpus", "--steps", "1", "--batch-size", "4", "--seq-len", "16"]
    assert main([*argv, "--hidden", "8", "--layers", "1", "--quiet", "--run-dir", "r", "--no-plots"]) == 0
    assert (tmp_path / "work" / "r" / "data" / "train.bin").is_file()  # was: "folder has no files"


def test_a_prompt_that_is_not_utf8_is_one_line(trained_run, tmp_path, monkeypatch, capsys) -> None:
    argv = ["lm", "generate", "--run", str(trained_run), "--prompt", "The \udcff"]  # as Python reads byte 0xff
    err = _run_cli(argv, tmp_path, monkeypatch, capsys)
    assert "prompt: '\\udcff' at character 4 is not text" in err


def test_another_tasks_run_or_a_hand_edited_config_is_one_line(trained_run, tmp_path, monkeypatch, capsys) -> None:
    import shutil

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"task": "classify", "train": {}}')
    for argv in (["lm", "generate", "--run", "other"], ["lm", "eval", "--run", "other", "--data", "other"]):
        assert (
            _run_cli(argv, tmp_path, monkeypatch, capsys)
            == "rnnkit: error: other: a 'classify' run, expected a 'lm' run"
        )
    shutil.copytree(trained_run, tmp_path / "edited")
    config = json.loads((tmp_path / "edited" / "config.json").read_text())
    config["model"]["hidden"] = "64"
    (tmp_path / "edited" / "config.json").write_text(json.dumps(config))
    for argv in (["lm", "generate", "--run", "edited"], ["lm", "train", "--resume", "edited"]):
        err = _run_cli(argv, tmp_path, monkeypatch, capsys)
        assert "edited/config.json: field 'model': hidden: expected int, got '64'" in err


def test_minutes_beside_steps_or_epochs_is_refused(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "t.txt").write_text(TEXT)
    for length in (["--steps", "10"], ["--epochs", "1"]):
        err = _run_cli(["lm", "train", "--data", "t.txt", "--minutes", "1", *length], tmp_path, monkeypatch, capsys)
        expected = f"sets the number of steps by timing; give it or {' '.join(length)}, not both"
        assert err == f"rnnkit: error: minutes: {expected}"


def test_generate_with_a_prompt_of_only_unknown_characters_fails(trained_run, tmp_path, monkeypatch, capsys) -> None:
    argv = ["lm", "generate", "--run", str(trained_run), "--prompt", "☃☃"]
    assert "none of its characters" in _run_cli(argv, tmp_path, monkeypatch, capsys)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "notarun").mkdir()
    (tmp_path / "t.txt").write_text(TEXT)
    for argv in (
        ["lm", "generate", "--run", "notarun"],
        ["lm", "eval", "--run", "notarun", "--data", "t.txt"],
        ["lm", "train", "--resume", "notarun"],
    ):
        assert "notarun" in _run_cli(argv, tmp_path, monkeypatch, capsys)
    assert "nowhere" in _run_cli(["lm", "generate", "--run", "nowhere"], tmp_path, monkeypatch, capsys)
    assert sorted(p.name for p in (tmp_path / "notarun").iterdir()) == []


def test_torchrun_two_processes_make_one_run_folder(tmp_path) -> None:
    """Under torchrun every process tokenizes on its own, but only rank 0's run folder and data exist;
    with --minutes, rank 0's step count is every process's (else DDP would wait forever)."""
    import os
    import subprocess
    import sys

    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "rnnkit",
        "lm",
        "train",
        "--data",
        "corpus.txt",
        "--seq-len",
        "16",
        "--hidden",
        "16",
        "--layers",
        "1",
        "--batch-size",
        "4",
        "--minutes",
        "0.02",
        "--device",
        "cpu",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "lm").iterdir()
    assert (run_dir / "data" / "split.json").is_file() and (run_dir / "checkpoints" / "last").is_dir()
    assert "## Sample" in (run_dir / "report.md").read_text()


def test_generated_pieces_join_to_the_decoded_text_even_when_it_ends_inside_a_character() -> None:
    """A text that ends with the first byte of a UTF-8 character (the stream decoder holds such
    a token back, waiting for the rest) still shows it, as U+FFFD: the pieces join to
    ``vocab.decode`` of the generated ids."""
    from rnnkit.data.vocab import SubwordVocab

    vocab = SubwordVocab.train(["héllo wörld, 日本語のテキスト\n" * 4], vocab_size=280)
    lead = next(i for i in range(len(vocab)) if vocab.stream_decoder()(i) == "" and vocab.decode([i]) == "\ufffd")
    torch.manual_seed(0)
    model = lm.LanguageModel(len(vocab), lm.ModelConfig(layers=1, hidden=8, dropout=0.0))
    with torch.no_grad():  # greedy generation: the lone lead byte at every step
        model.head.weight.zero_()
        model.head.bias.fill_(-10.0)[lead] = 0.0
    prompt = vocab.encode("h")
    ids = list(lm.generate_ids(model, prompt, max_new=3, temperature=0))
    text = "".join(lm.generate_text(model, vocab, prompt, max_new=3, temperature=0))
    assert ids == [lead] * 3
    assert text == vocab.decode(ids) and text.endswith("\ufffd")
