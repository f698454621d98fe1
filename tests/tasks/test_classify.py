"""Tests of rnnkit.tasks.classify: learning word order, determinism, padding invariance, the
three CLI jobs, and one clear error (exit status 2, nothing written) for each kind of bad input."""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from benchmarks.bench_sst2 import base_config, model_config, schedule_fields

from rnnkit.cli import main
from rnnkit.data.tabular import read_table
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.tasks import classify
from rnnkit.tasks.classify import Classifier, Config, DataConfig, ModelConfig, TextClassifier
from rnnkit.tasks.classify_pretrain import PretrainConfig, copy_pretrained, pretraining_sequences
from rnnkit.train import TrainConfig, load_run
from rnnkit.train.checkpoint import load_train_state
from rnnkit.train.optim import lr_factor

POSITIVE = ["good", "great", "fine", "nice"]
NEGATIVE = ["bad", "awful", "poor", "dull"]
FILLER = ["the", "film", "was", "and", "it", "plot", "acting", "really"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread is faster than two on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def order_sentences(n: int, seed: int) -> list[tuple[str, str]]:
    """Sentences with one positive word, one negative word and one "not": the label is the
    sentiment of the word that is *not* negated. Both classes have the same bag of words, so only
    word order tells them apart."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pos, neg = rng.choice(POSITIVE), rng.choice(NEGATIVE)
        negate_positive = rng.random() < 0.5
        phrases = [["not", pos], [neg]] if negate_positive else [[pos], ["not", neg]]
        rng.shuffle(phrases)
        words = []
        for phrase in [*phrases, []]:
            words += [rng.choice(FILLER) for _ in range(rng.randint(0, 3))] + phrase
        rows.append((" ".join(words), "negative" if negate_positive else "positive"))
    return rows


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


def tiny_config(tmp_path: Path, cell: str = "lstm", seed: int = 0, **data) -> Config:
    train = write_tsv(tmp_path / "train.tsv", order_sentences(400, seed=1))
    val = write_tsv(tmp_path / "val.tsv", order_sentences(200, seed=2))
    return Config(
        DataConfig(train=str(train), val=str(val), **data),
        ModelConfig(cell=cell, embed_dim=16, hidden_size=16, attention_size=8, dropout=0.0, embed_dropout=0.0),
        TrainConfig(
            steps=None, epochs=6, batch_size=32, lr=1e-2, seed=seed, monitor="accuracy", mode="max", quiet=True
        ),
    )


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lstm")
    result = classify.train(tiny_config(folder), runs_root=folder / "runs")
    return result.run_dir


def test_bilstm_learns_word_order_that_bag_of_words_cannot(lstm_run, tmp_path) -> None:
    lstm = json.loads((lstm_run / "config.json").read_text())
    assert lstm["model"]["cell"] == "lstm" and lstm["model"]["bidirectional"]
    lstm_accuracy = max(r["val_accuracy"] for r in _evals(lstm_run))
    bow = classify.train(tiny_config(tmp_path, cell="bow"), runs_root=tmp_path / "runs")
    bow_accuracy = max(r["val_accuracy"] for r in _evals(bow.run_dir))
    assert lstm_accuracy >= 0.95, lstm_accuracy
    assert bow_accuracy <= 0.65, bow_accuracy


def _evals(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("kind") == "eval"]


def test_training_with_a_seed_is_deterministic(lstm_run, tmp_path) -> None:
    again = classify.train(tiny_config(tmp_path), runs_root=tmp_path / "runs").run_dir
    texts = [t for t, _ in order_sentences(20, seed=3)]
    first = [p.probabilities for p in Classifier.load(lstm_run).predict(texts)]
    second = [p.probabilities for p in Classifier.load(again).predict(texts)]
    assert first == second


@pytest.mark.parametrize(
    ("cell", "pool"), [("lstm", "last"), ("lstm", "max"), ("gru", "mean"), ("rnn", "attention"), ("bow", "max")]
)
def test_padding_does_not_change_a_prediction(cell: str, pool: str) -> None:
    torch.manual_seed(0)
    model = TextClassifier(50, 3, ModelConfig(cell=cell, pool=pool, embed_dim=8, hidden_size=8, num_layers=2)).eval()
    short = torch.tensor([[5, 6, 7]])
    long = torch.randint(2, 50, (1, 40))
    alone = model(short, torch.tensor([3]))  # (1, C)
    padded = torch.cat([torch.nn.functional.pad(short, (0, 37)), long])  # (2, 40): padding with id 0
    in_batch = model(padded, torch.tensor([3, 40]))[:1]
    garbage = padded.clone()
    garbage[0, 3:] = 9  # whatever sits past the length is ignored
    assert torch.allclose(alone, in_batch, atol=1e-6)
    assert torch.allclose(alone, model(garbage, torch.tensor([3, 40]))[:1], atol=1e-6)


@pytest.mark.parametrize(("cell", "recurrent_dropout"), [("lstm", 0.0), ("lstm", 0.3), ("gru", 0.0), ("rnn", 0.3)])
def test_last_pooling_reads_forward_at_the_last_word_and_backward_at_the_first(cell, recurrent_dropout) -> None:
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, pool="last", embed_dim=6, hidden_size=5, num_layers=2)
    model = TextClassifier(30, 2, replace(config, recurrent_dropout=recurrent_dropout)).eval()
    seen = {}
    model.pool.register_forward_hook(lambda _, args, out: seen.update(outputs=args[0], pooled=out))
    lengths = torch.tensor([7, 2, 4])
    model(torch.randint(1, 30, (3, 7)) * classify.valid_mask(lengths, 7), lengths)
    outputs, pooled, H = seen["outputs"], seen["pooled"], 5  # (B, T, 2H), (B, 2H)
    assert torch.allclose(pooled[:, :H], outputs[torch.arange(3), lengths - 1, :H])  # forward: last word
    assert torch.allclose(pooled[:, H:], outputs[:, 0, H:])  # backward: first word


@pytest.mark.parametrize("cell", ["bow", "lstm"])
def test_a_length_of_zero_or_past_the_tokens_is_refused_not_pooled_into_nan(cell: str) -> None:
    model = TextClassifier(20, 2, ModelConfig(cell=cell, embed_dim=4, hidden_size=4)).eval()
    tokens = torch.tensor([[3, 4, 5], [6, 0, 0]])
    for lengths in ([3, 0], [3, 4]):
        with pytest.raises(ValueError, match=r"lengths: .*"):
            model(tokens, torch.tensor(lengths))


def test_predict_sentence_alone_or_beside_a_long_one_gives_the_same_probabilities(lstm_run) -> None:
    classifier = Classifier.load(lstm_run)
    sentence = "the film was not good and bad"
    alone = classifier.predict([sentence])[0].probabilities
    together = classifier.predict([sentence, " ".join(["the plot was really fine and not dull"] * 8)])[0].probabilities
    assert alone == pytest.approx(together, abs=1e-6)


def test_predict_handles_unseen_words_and_writes_text_or_json(lstm_run, tmp_path, capsys) -> None:
    inputs = tmp_path / "in.txt"
    inputs.write_text("the zorblax was not good and bad\nunheard-of words only\n", encoding="utf-8")
    assert main(["classify", "predict", "--run", str(lstm_run), "--input", str(inputs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    label, probs = lines[0].split("\t")
    assert label in ("negative", "positive")
    assert sum(float(p.split(":")[1]) for p in probs.split()) == pytest.approx(1.0, abs=1e-3)
    out = tmp_path / "out.jsonl"
    args = ["classify", "predict", "--run", str(lstm_run), "--input", str(inputs), "--output", str(out)]
    assert main([*args, "--output-format", "json"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in records] == inputs.read_text().splitlines()
    assert set(records[0]["probabilities"]) == {"negative", "positive"}


def test_predict_reads_standard_input(lstm_run, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"not good , bad\nfine and not dull\n")))
    assert main(["classify", "predict", "--run", str(lstm_run), "--input", "-", "--output-format", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["not good , bad", "fine and not dull"]


def test_bad_standard_input_is_one_line_naming_stdin(lstm_run, monkeypatch, capsys) -> None:
    for content, pattern in [(b"ok\n\xff bad\n", r"<stdin>:2: not UTF-8 text"), (b"\n", r"<stdin>: empty file")]:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(content)))
        _fails_cleanly(["classify", "predict", "--run", str(lstm_run), "--input", "-"], capsys, pattern)


def test_eval_prints_table_and_writes_report_and_confusion_png(lstm_run, tmp_path, capsys) -> None:
    data = write_tsv(tmp_path / "test.tsv", order_sentences(60, seed=4))
    assert (
        main(["classify", "eval", "--run", str(lstm_run), "--data", str(data), "--out-dir", str(tmp_path / "e")]) == 0
    )
    printed = capsys.readouterr().out
    assert re.search(r"accuracy \d\.\d{4}\s+macro-F1", printed) and "negative" in printed
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert sum(map(sum, report["confusion_matrix"])) == 60
    assert report["per_class"]["positive"]["support"] + report["per_class"]["negative"]["support"] == 60
    assert (tmp_path / "e" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "Padding:" in (lstm_run / "report.md").read_text()


def test_eval_on_a_table_with_one_of_the_classes_scores_macro_f1_over_the_classes_present(lstm_run, tmp_path) -> None:
    rows = [(t, y) for t, y in order_sentences(80, seed=8) if y == "positive"]
    report = classify.evaluate_file(lstm_run, write_tsv(tmp_path / "pos.tsv", rows), tmp_path / "e")
    assert report["labels"] == ["negative", "positive"] and report["per_class"]["negative"]["support"] == 0
    f1 = {name: c["f1"] for name, c in report["per_class"].items()}
    predicted_negative = report["confusion_matrix"][1][0] > 0
    expected = (f1["negative"] + f1["positive"]) / 2 if predicted_negative else f1["positive"]
    assert report["macro_f1"] == pytest.approx(expected) and report["macro_f1"] > 0.9


def test_cli_train_with_options_and_a_validation_file_in_another_format(tmp_path, capsys) -> None:
    train = write_tsv(tmp_path / "train.tsv", order_sentences(64, seed=5))
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"content": t, "label": y}) + "\n" for t, y in order_sentences(16, seed=6)))
    run = tmp_path / "run"
    argv = ["classify", "train", "--train", str(train), "--val", str(val), "--val-text-column", "content"]
    argv += ["--cell", "gru", "--pool", "attention", "--embed-dim", "8", "--hidden-size", "8", "--no-bidirectional"]
    argv += ["--recurrent-dropout", "0.2", "--epochs", "1", "--batch-size", "16", "--run-dir", str(run), "--quiet"]
    assert main(argv) == 0
    assert f"run folder: {run}" in capsys.readouterr().out
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["cell"] == "gru" and saved["model"]["pool"] == "attention"
    assert saved["model"]["bidirectional"] is False and saved["model"]["recurrent_dropout"] == 0.2
    assert saved["train"]["epochs"] == 1 and saved["train"]["monitor"] == "accuracy"
    assert len(_evals(run)) == 1 and (run / "plots" / "confusion.png").exists()


def test_cli_options_from_a_config_file_and_the_command_line_wins(tmp_path, capsys) -> None:
    train = write_tsv(tmp_path / "train.tsv", order_sentences(32, seed=7))
    toml = tmp_path / "run.toml"
    toml.write_text(f'train = "{train}"\ncell = "bow"\nhidden_size = 4\nepochs = 1\nquiet = true\n', encoding="utf-8")
    assert (
        main(["classify", "train", "--config", str(toml), "--hidden-size", "6", "--run-dir", str(tmp_path / "r")]) == 0
    )
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["model"]["cell"], saved["model"]["hidden_size"], saved["train"]["epochs"]) == ("bow", 6, 1)
    _fails_cleanly(["classify", "train", "--quiet"], capsys, r"--train: required")


def test_classification_report_figures() -> None:
    matrix = torch.tensor([[3, 1, 0], [0, 2, 2], [0, 0, 2]])  # rows true, columns predicted
    report = classify.classification_report(matrix, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(7 / 10)
    f1 = {"a": 2 * 1 * 0.75 / 1.75, "b": 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), "c": 2 * 0.5 * 1 / 1.5}
    assert report["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert report["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": f1["b"], "support": 4})


def test_macro_f1_leaves_out_a_class_neither_in_the_data_nor_predicted() -> None:
    matrix = torch.tensor([[2, 0, 0], [1, 3, 0], [0, 0, 0]])  # class c: no example, never predicted
    report = classify.classification_report(matrix, ["a", "b", "c"])
    f1 = {"a": 2 * (2 / 3) * 1 / (2 / 3 + 1), "b": 2 * 1 * 0.75 / 1.75}
    assert report["macro_f1"] == pytest.approx((f1["a"] + f1["b"]) / 2)
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    predicted_only = classify.classification_report(torch.tensor([[1, 1], [0, 0]]), ["a", "b"])
    assert predicted_only["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)  # b was predicted: its F1 of 0 counts


def test_labels_any_number_strings_or_integers_in_training_order() -> None:
    assert classify.LabelSet.build(["10", "2", "2", "1"]).names == ["1", "2", "10"]
    assert classify.LabelSet.build(["neutral", "positive", "negative"]).names == ["negative", "neutral", "positive"]


def test_subword_vocabulary_trains_and_predicts(tmp_path) -> None:
    config = tiny_config(tmp_path, vocab="subword", subword_size=300)
    config.train.epochs = 1
    run = classify.train(config, runs_root=tmp_path / "runs").run_dir
    assert (run / "tokenizer.json").exists() and not (run / "vocab.json").exists()
    prediction = Classifier.load(run).predict(["ünïcode never seen, not good"])[0]
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


# ----------------------------------------------------------------- bad input: one line, exit 2, nothing written
def _fails_cleanly(argv: list[str], capsys, pattern: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("text\tlabel\nfine\t1\n", r"train\.tsv:1: no column 'sentence'; the columns found are \['text', 'label'\]"),
        ("sentence\tlabel\nfine\t1\nbad\t0\textra\n", r"train\.tsv:3: found 3 fields, expected 2"),
        ("sentence\tlabel\nfine\t1\n \t0\n", r"train\.tsv:3: empty 'sentence' field"),
        ("", r"train\.tsv: empty file"),
        ("sentence\tlabel\nfine\t1\nna\xefve\t0\n".encode("latin-1"), r"train\.tsv:3: not UTF-8 text"),
    ],
)
def test_train_on_bad_data_fails_with_one_line_and_writes_nothing(tmp_path, capsys, content, pattern) -> None:
    train = tmp_path / "train.tsv"
    train.write_bytes(content if isinstance(content, bytes) else content.encode())
    runs = tmp_path / "runs"
    _fails_cleanly(
        ["classify", "train", "--train", str(train), "--run-dir", str(runs / "x"), "--quiet"], capsys, pattern
    )
    assert not runs.exists()


def test_eval_with_a_label_training_never_saw_fails_and_writes_nothing(lstm_run, tmp_path, capsys) -> None:
    data = write_tsv(tmp_path / "new.tsv", [("good film", "positive"), ("meh film", "neutral")])
    out = tmp_path / "e"
    argv = ["classify", "eval", "--run", str(lstm_run), "--data", str(data), "--out-dir", str(out)]
    _fails_cleanly(argv, capsys, r"new\.tsv:3: label 'neutral' was never seen in training; expected one of")
    assert not out.exists()


def test_predict_on_bad_input_fails_and_writes_nothing(lstm_run, tmp_path, capsys) -> None:
    out = tmp_path / "out.txt"
    for content, pattern in [
        (b"good film\n\nbad film\n", r"in\.txt:2: empty text"),
        (b"", r"in\.txt: empty file; expected one text per line$"),
        (b"ok\n\xff\xfe bad\n", r"in\.txt:2: not UTF-8 text"),
    ]:
        (tmp_path / "in.txt").write_bytes(content)
        argv = [
            "classify",
            "predict",
            "--run",
            str(lstm_run),
            "--input",
            str(tmp_path / "in.txt"),
            "--output",
            str(out),
        ]
        _fails_cleanly(argv, capsys, pattern)
        assert not out.exists()


def test_not_a_run_folder_is_one_line(tmp_path, capsys) -> None:
    _fails_cleanly(["classify", "predict", "--run", str(tmp_path / "nope")], capsys, r"no such run folder")


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        (["--embed-dropout", "1.5"], r"embed_dropout: expected a probability in \[0, 1\), got 1\.5"),
        (["--max-vocab", "0"], r"max_vocab: expected an integer >= 1 or None \(no limit\), got 0"),
        (["--vocab", "subword", "--subword-size", "10"], r"subword_size: expected >= 257 \(256 bytes \+ merges\)"),
    ],
)
def test_bad_model_or_vocabulary_option_is_a_config_error(tmp_path, capsys, options, pattern) -> None:
    train = write_tsv(tmp_path / "t.tsv", [("good", "1"), ("bad", "0")])
    argv = ["classify", "train", "--train", str(train), *options, "--run-dir", str(tmp_path / "r")]
    _fails_cleanly(argv, capsys, pattern)
    assert not (tmp_path / "r").exists()


def _sst2_or_skip() -> Path:
    root = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[2] / "../shared/data"))
    if not (root / "sst2" / "dev.tsv").exists():
        pytest.skip(f"SST-2 not found under {root} (../shared/data is absent outside the project's machines)")
    return root


def test_sst2_splits_read_if_present() -> None:
    root = _sst2_or_skip()
    with pytest.raises(DataError, match=r"no column 'sentence'; the columns found are \['label', 'content'\]"):
        read_table(root / "sst2" / "dev.tsv")  # the dev split names its text column differently
    dev = read_table(root / "sst2" / "dev.tsv", text_column="content")
    assert len(dev) == 872 and set(dev.labels) == {"0", "1"}


def _head(source: Path, target: Path, rows: int) -> Path:
    """The header and the first ``rows`` rows of an SST-2 split, as a file of its own."""
    with source.open(encoding="utf-8") as f:
        target.write_text("".join(next(f) for _ in range(rows + 1)), encoding="utf-8")
    return target


def test_sst2_few_hundred_rows_train_eval_and_predict_through_the_cli(tmp_path, capsys) -> None:
    sst2 = _sst2_or_skip() / "sst2"
    train, dev = (
        _head(sst2 / "train.tsv", tmp_path / "train.tsv", 300),
        _head(sst2 / "dev.tsv", tmp_path / "dev.tsv", 80),
    )
    run = tmp_path / "run"
    argv = ["classify", "train", "--train", str(train), "--val", str(dev), "--val-text-column", "content"]
    argv += ["--embed-dim", "16", "--hidden-size", "16", "--pool", "mean", "--dropout", "0", "--lr", "0.01"]
    assert main([*argv, "--epochs", "5", "--batch-size", "32", "--monitor", "macro_f1", "--run-dir", str(run)]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert losses[-1] < losses[0] - 0.2, losses
    assert {"val_accuracy", "val_macro_f1"} <= set(_evals(run)[-1])
    capsys.readouterr()
    assert main(["classify", "eval", "--run", str(run), "--data", str(dev), "--text-column", "content", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == ["0", "1"] and sum(c["support"] for c in report["per_class"].values()) == 80
    best = max(_evals(run), key=lambda r: r["val_macro_f1"])  # eval reads the best checkpoint: the same figures
    assert (report["macro_f1"], report["accuracy"]) == pytest.approx((best["val_macro_f1"], best["val_accuracy"]))
    (tmp_path / "in.txt").write_text("a gripping , funny film\nzzyzx qwxv\n" + "dull " * 500 + "\n")
    assert main(["classify", "predict", "--run", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and all(re.fullmatch(r"[01]\t0:0\.\d{4} 1:0\.\d{4}", line) for line in printed)


# ----------------------------------------------------------------- bidirectional language-model pretraining
def pretrain_config(tmp_path: Path, epochs: int = 5, **pretrain) -> Config:
    config = tiny_config(tmp_path)
    config.pretrain = PretrainConfig(epochs=epochs, batch_size=32, lr=1e-2, dropout=0.0, **pretrain)
    return config


def test_pretraining_sequences_are_unique_and_the_longest_leave_out_their_parts() -> None:
    ids = [[1, 2, 3], [2, 3], [3, 4], [1, 2, 3], [5], [12, 3], [7, 1, 2]]
    assert pretraining_sequences(ids, "all") == [[1, 2, 3], [7, 1, 2], [2, 3], [3, 4], [12, 3]]
    # [2, 3] is inside [1, 2, 3]; [12, 3] is not (whole ids, not digits); [5] predicts nothing
    assert pretraining_sequences(ids, "longest") == [[1, 2, 3], [7, 1, 2], [3, 4], [12, 3]]
    with pytest.raises(ValueError, match=r"text: expected one of \['longest', 'all'\], got 'some'"):
        pretraining_sequences(ids, "some")


def test_bilm_never_sees_the_word_it_predicts() -> None:
    torch.manual_seed(0)
    config = ModelConfig(cell="lstm", embed_dim=8, hidden_size=6)
    bilm = classify.build_bilm(30, config, PretrainConfig(epochs=1)).eval()
    tokens, L, j = torch.tensor([[3, 9, 4, 17, 5, 8]]), 6, 3
    changed = tokens.clone()
    changed[0, j] = 21
    h, targets = bilm.predictions(tokens, torch.tensor([L]))  # rows: forward t = 0..L-2, then backward t = 1..L-1
    h2, targets2 = bilm.predictions(changed, torch.tensor([L]))
    assert h.shape == (2 * (L - 1), 6) and targets.tolist() == [9, 4, 17, 5, 8, 3, 9, 4, 17, 5]
    forward_row, backward_row = j - 1, (L - 1) + (j + 1) - 1  # the two rows whose target is word j
    assert targets2[forward_row] == targets2[backward_row] == 21
    assert torch.equal(h[forward_row], h2[forward_row]) and torch.equal(h[backward_row], h2[backward_row])
    assert not torch.allclose(h[j], h2[j])  # the forward output at j itself does read word j


def test_pretraining_lowers_the_lm_loss_and_the_classifier_starts_from_its_weights(tmp_path) -> None:
    config = pretrain_config(tmp_path)
    config.train = replace(config.train, steps=1, epochs=None, lr=1e-9)  # fine-tuning moves nothing
    run = classify.train(config, runs_root=tmp_path / "runs").run_dir
    lm_evals = _evals(run / "pretrain")
    assert len(lm_evals) == 5 and lm_evals[-1]["val_loss"] < lm_evals[0]["val_loss"] - 0.2, lm_evals
    assert json.loads((run / "config.json").read_text())["pretrain"]["epochs"] == 5
    assert json.loads((run / "pretrain" / "config.json").read_text())["task"] == "classify-pretrain"
    _, pretrained = load_run(run / "pretrain", "last")
    _, tuned = load_run(run, "last")
    fresh_config = tiny_config(tmp_path)  # the same data, seed and fine-tuning, no pretraining
    fresh_config.train = config.train
    _, fresh = load_run(classify.train(fresh_config, runs_root=tmp_path / "fresh").run_dir, "last")
    names = [k for k in tuned if k.startswith(("embed.", "encoder."))]
    assert "embed.weight" in names and "encoder.weight_hh_l0_reverse" in names
    for k in names:
        assert torch.allclose(tuned[k], pretrained[k], atol=1e-6), k
    assert (tuned["embed.weight"] - fresh["embed.weight"]).abs().max() > 1e-2
    assert torch.allclose(tuned["head.weight"], fresh["head.weight"], atol=1e-6)  # the head starts fresh


def test_copy_pretrained_checks_names_and_shapes() -> None:
    classifier = TextClassifier(30, 2, ModelConfig(embed_dim=8, hidden_size=6))
    other = classify.build_bilm(30, ModelConfig(embed_dim=8, hidden_size=5), PretrainConfig(epochs=1))
    with pytest.raises(CheckpointError, match=r"encoder.weight_ih_l0 has shape \(20, 8\), expected \(24, 8\)"):
        copy_pretrained(classifier, other.state_dict())
    same = classify.build_bilm(30, ModelConfig(embed_dim=8, hidden_size=6), PretrainConfig(epochs=1))
    names = copy_pretrained(classifier, same.state_dict())
    assert len(names) == 1 + 8 and torch.equal(classifier.embed.weight, same.embed.weight)


def test_cli_pretrain_lm_flags_are_saved_and_shown_in_help(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["classify", "train", "--help"])
    assert "--pretrain-lm-epochs" in capsys.readouterr().out
    train = write_tsv(tmp_path / "train.tsv", order_sentences(64, seed=5))
    run = tmp_path / "run"
    argv = ["classify", "train", "--train", str(train), "--embed-dim", "8", "--hidden-size", "8", "--epochs", "1"]
    argv += ["--pretrain-lm-epochs", "2", "--pretrain-lm-text", "all", "--no-pretrain-lm-tie-weights"]
    argv += ["--pretrain-lm-batch-size", "16", "--batch-size", "16", "--run-dir", str(run), "--quiet"]
    assert main(argv) == 0
    saved = json.loads((run / "config.json").read_text())["pretrain"]
    assert (saved["epochs"], saved["text"], saved["tie_weights"], saved["batch_size"]) == (2, "all", False, 16)
    _, lm_weights = load_run(run / "pretrain", "last")
    assert "decoder.weight" in lm_weights and "project.weight" not in lm_weights  # the untied softmax
    assert Classifier.load(run).predict(["not good and fine"])[0].label in ("negative", "positive")


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        (
            ["--pretrain-lm-epochs", "-1"],
            r"pretrain\.epochs \(--pretrain-lm-epochs\): expected an integer >= 0, got -1",
        ),
        (["--pretrain-lm-epochs", "2", "--cell", "bow"], r"cell 'bow' has no recurrent encoder to pretrain"),
        (["--pretrain-lm-epochs", "2", "--num-layers", "2"], r"must have num_layers 1 .* got num_layers 2"),
        (["--pretrain-lm-dropout", "1.0"], r"pretrain\.dropout: expected a probability in \[0, 1\), got 1\.0"),
        (["--pretrain-lm-lr", "0"], r"pretrain\.lr: expected a number > 0, got 0\.0"),
        (["--pretrain-lm-epochs", "1"], r"t\.tsv: no text of two or more tokens; expected some to pretrain"),
    ],
)
def test_bad_pretrain_options_fail_with_one_line_and_write_nothing(tmp_path, capsys, options, pattern) -> None:
    train = write_tsv(tmp_path / "t.tsv", [("good", "1"), ("bad", "0")])  # one word each: nothing to pretrain on
    argv = ["classify", "train", "--train", str(train), *options, "--run-dir", str(tmp_path / "r")]
    _fails_cleanly(argv, capsys, pattern)
    assert not (tmp_path / "r").exists()


# ===================================================================== word dropout, weight averaging
def test_word_dropout_replaces_tokens_by_unk_in_training_only() -> None:
    torch.manual_seed(0)
    model = TextClassifier(50, 2, ModelConfig(embed_dim=8, hidden_size=8, word_dropout=0.5, embed_dropout=0.0))
    seen = []
    model.embed.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    tokens = torch.randint(2, 50, (8, 40))
    tokens[:, 30:] = 0  # padding
    lengths = torch.full((8,), 30)
    model.train()(tokens, lengths)
    model.eval()(tokens, lengths)
    trained, evaluated = seen
    dropped = trained[:, :30] == TextClassifier.unk_id
    assert 0.4 < dropped.float().mean() < 0.6
    assert torch.equal(trained[~(trained == TextClassifier.unk_id)], tokens[~(trained == TextClassifier.unk_id)])
    assert (trained[:, 30:] == 0).all() and torch.equal(evaluated, tokens)


def test_ema_run_evaluates_saves_and_loads_the_averaged_weights(tmp_path) -> None:
    config = tiny_config(tmp_path)
    config.model = replace(config.model, average="ema", average_decay=0.9, word_dropout=0.1)
    config.train = replace(config.train, epochs=2)
    run = classify.train(config, runs_root=tmp_path / "runs").run_dir
    saved = json.loads((run / "config.json").read_text())["model"]
    assert (saved["average"], saved["average_decay"], saved["word_dropout"]) == ("ema", 0.9, 0.1)
    averaged, raw = Classifier.load(run, "last"), Classifier.load(run, "last", averaged=False)
    assert int(raw.model.average.updates) == int(raw.model.average.steps) == 2 * 13  # 400 sentences / 32
    assert torch.equal(averaged.model.head.weight, raw.model.average.head__weight)
    assert not torch.allclose(averaged.model.head.weight, raw.model.head.weight)
    val = read_table(config.data.val, "sentence", "label")
    assert _evals(run)[-1]["val_accuracy"] == pytest.approx(averaged.evaluate(val)["accuracy"])


def test_swa_starts_at_the_configured_fraction_of_the_steps(tmp_path) -> None:
    config = tiny_config(tmp_path)
    config.model = replace(config.model, average="swa")  # default start: half of the steps
    config.train = replace(config.train, epochs=2)
    run = classify.train(config, runs_root=tmp_path / "runs").run_dir
    average = Classifier.load(run, "last", averaged=False).model.average
    assert (int(average.steps), int(average.updates)) == (26, 13)


def train_tiny_from_cli(tmp_path: Path, *options: str) -> Path:
    """``rnnkit classify train`` of a tiny LSTM for 1 epoch of 64 ordered sentences (batch 16) with
    extra ``options``; returns the run folder."""
    train = write_tsv(tmp_path / "train.tsv", order_sentences(64, seed=5))
    run = tmp_path / "run"
    argv = ["classify", "train", "--train", str(train), "--embed-dim", "8", "--hidden-size", "8", "--epochs", "1"]
    argv += ["--batch-size", "16", "--run-dir", str(run), "--quiet", *options]
    assert main(argv) == 0
    return run


def test_embed_lr_scale_gives_the_embedding_its_own_learning_rate(tmp_path, capsys) -> None:
    run = train_tiny_from_cli(tmp_path, "--lr", "0.01", "--embed-lr-scale", "0.1")
    assert json.loads((run / "config.json").read_text())["model"]["embed_lr_scale"] == 0.1
    groups = load_train_state(run / "checkpoints" / "last")["optimizer"]["param_groups"]
    assert [g["initial_lr"] for g in groups] == pytest.approx([0.01, 0.001])
    assert len(groups[1]["params"]) == 1 and len(groups[0]["params"]) > 1  # the embedding alone


def test_a_run_whose_config_json_was_edited_to_nonsense_is_one_line(tmp_path, capsys) -> None:
    run = train_tiny_from_cli(tmp_path, "--char-ngrams", "64")
    config = json.loads((run / "config.json").read_text())
    config["data"]["char_ngrams"] = -3
    (run / "config.json").write_text(json.dumps(config))
    pattern = r"config\.json: field 'data': char_ngrams: expected an integer >= 0 \(0: off\), got -3"
    _fails_cleanly(["classify", "predict", "--run", str(run), "--input", str(run / "config.json")], capsys, pattern)
    config["data"]["char_ngrams"] = 32  # not the size of the saved table
    (run / "config.json").write_text(json.dumps(config))
    pattern = r"do not fit the model of the run's config\.json \(size mismatch for ngram_embed\.weight: "
    pattern += r".*\[65, 8\].*\[33, 8\]\)\)$"
    _fails_cleanly(["classify", "predict", "--run", str(run)], capsys, pattern)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        (["--word-dropout", "1.0"], r"word_dropout: expected a probability in \[0, 1\), got 1\.0"),
        (["--word-dropout", "0.1", "--vocab", "subword"], r"word_dropout: needs the word vocabulary's <unk>"),
        (["--average-decay", "1.0", "--average", "ema"], r"average_decay: expected a number in \[0, 1\), got 1\.0"),
        (["--average-start", "1.5", "--average", "swa"], r"average_start: expected a fraction in \[0, 1\)"),
        (["--embed-lr-scale", "0"], r"embed_lr_scale: expected a number > 0, got 0\.0"),
        (["--char-ngrams", "-1"], r"char_ngrams: expected an integer >= 0 \(0: off\), got -1"),
        (["--char-ngrams", "10", "--vocab", "subword"], r"char_ngrams: needs the word vocabulary"),
        (["--char-ngrams", "10", "--ngram-min", "4", "--ngram-max", "3"], r"expected 1 <= ngram_min <= ngram_max"),
        (["--char-ngrams", "10", "--pretrain-lm-epochs", "1"], r"char_ngrams: not supported with language-model"),
        (["--vat-eps", "-1"], r"vat_eps: expected a finite number >= 0, got -1\.0"),
        (["--vat-eps", "nan"], r"vat_eps: expected a finite number >= 0, got nan"),
        (["--vat-eps", "1", "--vat-xi", "0"], r"vat_xi: expected a finite number > 0, got 0\.0"),
        (["--monitor", "f1"], r"monitor: expected one of \['loss', 'accuracy', 'macro_f1'\] .*, got 'f1'"),
        (["--monitor", "loss"], r"mode: 'max' with monitor 'loss' would keep the worst checkpoint; expected 'min'"),
        (["--monitor", "macro_f1", "--mode", "min"], r"mode: 'min' with monitor 'macro_f1' .*; expected 'max'"),
    ],
)
def test_bad_training_options_fail_with_one_line_and_write_nothing(tmp_path, capsys, options, pattern) -> None:
    train = write_tsv(tmp_path / "t.tsv", [("good", "1"), ("bad", "0")])
    argv = ["classify", "train", "--train", str(train), *options, "--run-dir", str(tmp_path / "r")]
    _fails_cleanly(argv, capsys, pattern)
    assert not (tmp_path / "r").exists()


def test_resuming_an_ema_run_continues_its_average_exactly(tmp_path) -> None:
    def config(epochs: int, run_dir: Path, resume: str | None = None) -> Config:
        c = tiny_config(tmp_path)
        c.model = replace(c.model, average="ema", average_decay=0.9)
        c.train = replace(c.train, epochs=epochs, schedule="constant", run_dir=str(run_dir), resume=resume)
        return c

    straight = classify.train(config(2, tmp_path / "a")).run_dir
    classify.train(config(1, tmp_path / "b"))
    resumed = classify.train(config(2, tmp_path / "b", resume=str(tmp_path / "b"))).run_dir
    a, b = (Classifier.load(r, "last", averaged=False).model.average for r in (straight, resumed))
    assert int(b.updates) == int(a.updates) == 26
    assert all(torch.allclose(x, y) for x, y in zip(a.buffers(), b.buffers(), strict=True))


def test_bench_sst2_step_schedule_drops_the_lr_every_k_epochs_after_the_warmup() -> None:
    args = Namespace(schedule="step", step_epochs=2.0, gamma=0.25, batch_size=64)
    fields = schedule_fields(args, "bilstm", 56490)  # 883 batches per epoch
    assert fields == {"schedule": "step", "step_size": 1766, "gamma": 0.25}
    factor = lr_factor(TrainConfig(steps=5298, warmup=200, **fields), 5298)
    assert [factor(s) for s in (199, 200 + 1765, 200 + 1766, 200 + 2 * 1766)] == pytest.approx([1, 1, 0.25, 0.0625])
    assert schedule_fields(args, "bilstm_plain", 56490) == {"schedule": "cosine"}  # the baseline row keeps cosine
    assert schedule_fields(Namespace(schedule="constant"), "bigru", 56490) == {"schedule": "constant"}


def test_bench_sst2_hidden_size_widens_the_recurrent_models_only() -> None:
    args = Namespace(hidden_size=256, word_dropout=0.0, embed_lr_scale=1.0, average="swa", average_decay=0.999)
    args.average_start, args.adversarial_eps, args.vat_eps, args.vat_xi = None, 0.0, 0.5, 0.1
    assert [model_config(args, n).hidden_size for n in ("bilstm", "bigru", "bilstm_plain", "bow")] == [256] * 3 + [128]
    assert (model_config(args, "bilstm").average, model_config(args, "bilstm_plain").average) == ("swa", "none")
    assert (model_config(args, "bigru").vat_eps, model_config(args, "bilstm_plain").vat_eps) == (0.5, 0.0)


# ===================================================================== adversarial training on the embeddings
def _adversarial_batch(cell: str, eps: float) -> tuple[TextClassifier, classify.Batch]:
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, embed_dim=8, hidden_size=8, attention_size=4, dropout=0.0, embed_dropout=0.0)
    model = TextClassifier(40, 3, replace(config, adversarial_eps=eps)).train()
    examples = classify.Examples([[5, 6, 7], [8, 9, 10, 11, 12, 13], [14], [2, 3, 4, 5]], [0, 2, 1, 2])
    return model, classify.collate(examples, range(4))  # tokens (4, 6), padded with 0


def test_adversarial_eps_zero_trains_on_exactly_the_plain_loss() -> None:
    model, batch = _adversarial_batch("lstm", 0.0)
    step = classify.train_step_for(model.config)
    assert step is classify.classification_step
    loss = step(model, batch).loss
    assert torch.equal(loss, torch.nn.functional.cross_entropy(model(batch.tokens, batch.lengths), batch.labels))


@pytest.mark.parametrize("cell", ["lstm", "bow"])
def test_adversarial_perturbation_has_norm_eps_per_sentence_and_none_on_padding(cell: str) -> None:
    model, batch = _adversarial_batch(cell, 0.5)
    embedded = model.embed_tokens(batch.tokens)  # (B, T, E)
    clean = torch.nn.functional.cross_entropy(model(batch.tokens, batch.lengths, embedded=embedded), batch.labels)
    r = classify.adversarial_perturbation(clean, embedded, batch.lengths, 0.5)
    assert r.shape == embedded.shape and not r.requires_grad
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((4,), 0.5), atol=1e-6)
    for b, length in enumerate(batch.lengths.tolist()):
        assert (r[b, length:] == 0).all() and (r[b, :length].abs().sum(-1) > 0).all()
    (grad,) = torch.autograd.grad(clean, embedded)
    cosine = torch.nn.functional.cosine_similarity(r.flatten(1), grad.flatten(1), dim=1)
    assert torch.allclose(cosine, torch.ones(4), atol=1e-5)  # along the gradient: the loss goes up
    moved = torch.nn.functional.cross_entropy(model(batch.tokens, batch.lengths, embedded=embedded + r), batch.labels)
    assert moved > clean


@pytest.mark.parametrize("cell", ["lstm", "bow"])
def test_adversarial_step_gradient_is_the_sum_of_both_losses_gradients_with_r_held_fixed(cell: str) -> None:
    eps = 2.0
    model, batch = _adversarial_batch(cell, eps)
    params = [p for p in model.parameters() if p.requires_grad]
    # by hand: r from the clean loss's gradient per sentence, then each loss's gradient separately
    embedded = model.embed_tokens(batch.tokens)
    clean = torch.nn.functional.cross_entropy(model(batch.tokens, batch.lengths, embedded=embedded), batch.labels)
    (grad,) = torch.autograd.grad(clean, embedded, retain_graph=True)
    r = torch.zeros_like(grad)
    for b, length in enumerate(batch.lengths.tolist()):
        r[b, :length] = eps * grad[b, :length] / grad[b, :length].norm()
    adversarial = torch.nn.functional.cross_entropy(
        model(batch.tokens, batch.lengths, embedded=model.embed_tokens(batch.tokens) + r), batch.labels
    )
    expected = [
        a + b
        for a, b in zip(
            torch.autograd.grad(clean, params, allow_unused=True, materialize_grads=True),
            torch.autograd.grad(adversarial, params, allow_unused=True, materialize_grads=True),
            strict=True,
        )
    ]
    out = classify.train_step_for(model.config)(model, batch, None)
    assert torch.allclose(out.loss, clean + adversarial, atol=1e-6)
    assert out.metrics["clean_loss"] == pytest.approx(clean.item(), abs=1e-6)
    out.loss.backward()
    assert model.embed.weight.grad.abs().sum() > 0  # the adversarial loss trains the embedding too
    for p, g in zip(params, expected, strict=True):
        assert torch.allclose(p.grad if p.grad is not None else torch.zeros_like(p), g, atol=1e-6)


def test_embedded_must_have_the_embedding_shape() -> None:
    model, batch = _adversarial_batch("lstm", 0.0)
    with pytest.raises(ValueError, match=r"embedded: expected shape \(B, T, E\) = \(4, 6, 8\), got \(4, 6, 7\)"):
        model(batch.tokens, batch.lengths, embedded=torch.zeros(4, 6, 7))


def test_cli_adversarial_eps_trains_and_is_saved_in_config_json(tmp_path, capsys) -> None:
    run = train_tiny_from_cli(tmp_path, "--adversarial-eps", "1.5", "--log-every", "1")
    assert json.loads((run / "config.json").read_text())["model"]["adversarial_eps"] == 1.5
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if r.get("kind") == "train"]
    assert len(steps) == 4  # 64 sentences / 16
    for r in steps:  # the loss minimized is the sum of the clean and the adversarial losses
        assert r["loss"] == pytest.approx(r["clean_loss"] + r["adversarial_loss"], rel=1e-5)


@pytest.mark.parametrize("value", ["-0.5", "nan", "inf"])
def test_bad_adversarial_eps_fails_with_one_line_and_writes_nothing(tmp_path, capsys, value) -> None:
    train = write_tsv(tmp_path / "t.tsv", [("good", "1"), ("bad", "0")])
    argv = ["classify", "train", "--train", str(train), "--adversarial-eps", value, "--run-dir", str(tmp_path / "r")]
    _fails_cleanly(
        argv, capsys, rf"adversarial_eps: expected a finite number >= 0, got {re.escape(str(float(value)))}$"
    )
    assert not (tmp_path / "r").exists()


def test_bench_sst2_adversarial_eps_applies_to_all_but_the_plain_row() -> None:
    args = Namespace(hidden_size=None, word_dropout=0.0, embed_lr_scale=1.0, average="swa", average_decay=0.999)
    args.average_start, args.adversarial_eps, args.vat_eps, args.vat_xi = None, 2.0, 0.0, 0.1
    assert [model_config(args, n).adversarial_eps for n in ("bilstm", "bigru", "bow", "bilstm_plain")] == [2.0] * 3 + [
        0.0
    ]


# ===================================================================== character n-grams
def suffix_sentences(stems: list[str], seed: int) -> list[tuple[str, str]]:
    """``"the film was <stem>ful"`` (positive) or ``<stem>less`` (negative): the label is in the
    word's ending, which a model that reads only whole words cannot see in a word it never met."""
    rng = random.Random(seed)
    rows = []
    for _ in range(300):
        positive = rng.random() < 0.5
        rows.append((f"the film was {rng.choice(stems)}{'ful' if positive else 'less'}", "1" if positive else "0"))
    return rows


def _stems(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("bcdfghjkmnpqrstvwz") + rng.choice("aeiou") for _ in range(3)) for _ in range(n)]


@pytest.mark.parametrize("cell", ["bow", "lstm"])
def test_char_ngrams_let_a_model_read_words_it_never_saw(tmp_path, cell: str) -> None:
    train = write_tsv(tmp_path / "train.tsv", suffix_sentences(_stems(30, seed=1), seed=1))
    val = write_tsv(tmp_path / "val.tsv", suffix_sentences(_stems(30, seed=2), seed=2))  # other stems: all unseen
    accuracy = {}
    for buckets in (0, 2000):
        config = Config(
            DataConfig(train=str(train), val=str(val), char_ngrams=buckets),
            ModelConfig(cell=cell, embed_dim=16, hidden_size=16, attention_size=8, dropout=0.0, embed_dropout=0.0),
            TrainConfig(steps=None, epochs=4, batch_size=16, lr=1e-2, seed=0, quiet=True),
        )
        run = classify.train(config, runs_root=tmp_path / f"runs{buckets}").run_dir
        accuracy[buckets] = Classifier.load(run, "last").evaluate(read_table(val, "sentence", "label"))["accuracy"]
    assert accuracy[2000] >= 0.95, accuracy
    assert accuracy[0] <= 0.65, accuracy  # every validation word with the label in it is <unk>


def _ngram_model() -> TextClassifier:
    torch.manual_seed(0)
    return TextClassifier(50, 3, ModelConfig(embed_dim=8, hidden_size=8, num_layers=2), ngram_buckets=40).eval()


def test_padding_does_not_change_a_prediction_with_char_ngrams() -> None:
    model = _ngram_model()
    short, short_grams = torch.tensor([[5, 6, 7]]), torch.randint(1, 41, (1, 3, 4))
    short_grams[0, 1, 2:] = 0  # a token with fewer n-grams
    long, long_grams = torch.randint(2, 50, (1, 40)), torch.randint(1, 41, (1, 40, 9))
    alone = model(short, torch.tensor([3]), short_grams)  # (1, C)
    tokens = torch.cat([torch.nn.functional.pad(short, (0, 37)), long])  # (2, 40)
    grams = torch.cat([torch.nn.functional.pad(short_grams, (0, 5, 0, 37)), long_grams])  # (2, 40, 9)
    assert torch.allclose(alone, model(tokens, torch.tensor([3, 40]), grams)[:1], atol=1e-6)
    assert not torch.allclose(alone, model(short, torch.tensor([3]), short_grams.flip(1)), atol=1e-3)  # they count


def test_ngrams_must_match_the_model() -> None:
    model = _ngram_model()
    tokens = torch.tensor([[5, 6]])
    with pytest.raises(ValueError, match=r"ngrams: expected \(B, T, K\) with \(B, T\) = \(1, 2\), got None"):
        model(tokens, torch.tensor([2]))
    with pytest.raises(ValueError, match=r"got \(1, 3, 4\)"):
        model(tokens, torch.tensor([2]), torch.ones(1, 3, 4, dtype=torch.long))
    plain = TextClassifier(50, 3, ModelConfig(embed_dim=8, hidden_size=8))
    with pytest.raises(ValueError, match="ngrams: this model has no n-gram embeddings"):
        plain(tokens, torch.tensor([2]), torch.ones(1, 2, 4, dtype=torch.long))


def test_pad_ngrams_pads_tokens_and_sentences_with_zero() -> None:
    grams = classify.pad_ngrams([[(3, 4), (5,)], [(6, 7, 8)]])
    assert grams.tolist() == [[[3, 4, 0], [5, 0, 0]], [[6, 7, 8], [0, 0, 0]]]


def test_cli_char_ngrams_run_predicts_unseen_words_apart_and_reloads_exactly(tmp_path, capsys) -> None:
    run = train_tiny_from_cli(tmp_path, "--char-ngrams", "64", "--ngram-max", "4", "--adversarial-eps", "0.5")
    data = json.loads((run / "config.json").read_text())["data"]
    assert (data["char_ngrams"], data["ngram_min"], data["ngram_max"]) == (64, 3, 4)
    classifier = Classifier.load(run)
    assert tuple(classifier.model.ngram_embed.weight.shape) == (65, 8)
    texts = ["the zorblax was good", "the quuxify was good"]  # two words training never saw
    first, second = (p.probabilities for p in classifier.predict(texts))
    assert first != pytest.approx(second, abs=1e-6)  # both <unk>, but their n-grams differ
    assert [p.probabilities for p in Classifier.load(run).predict(texts)] == [first, second]


def test_bench_sst2_char_ngrams_apply_to_all_but_the_plain_row(tmp_path) -> None:
    args = Namespace(holdout=0, data=str(tmp_path), min_freq=2, max_train_examples=None, batch_size=64, lr=2e-3)
    args.weight_decay, args.char_ngrams, args.ngram_min, args.ngram_max = 0.0, 1000, 3, 6
    args.pretrain_lm_epochs, args.pretrain_lm_text, args.pretrain_lm_tie_weights = 0, "longest", True
    args.pretrain_lm_lr, args.pretrain_lm_batch_size, args.pretrain_lm_dropout = 5e-3, 16, 0.5
    model = ModelConfig()
    assert (
        base_config(args, model, 0, tmp_path).data.char_ngrams,
        base_config(args, model, 0, tmp_path).data.ngram_max,
    ) == (1000, 6)
    assert base_config(args, model, 0, tmp_path, plain=True).data.char_ngrams == 0


# ===================================================================== virtual adversarial training
def _kl_per_sentence(model: TextClassifier, batch: classify.Batch, embedded, moved) -> torch.Tensor:
    p = torch.log_softmax(model(batch.tokens, batch.lengths, embedded=embedded), -1)  # (B, C)
    q = torch.log_softmax(model(batch.tokens, batch.lengths, embedded=moved), -1)
    return (p.exp() * (p - q)).sum(-1)  # (B,)


@pytest.mark.parametrize("cell", ["lstm", "bow"])
def test_vat_perturbation_finds_where_the_prediction_changes_most(cell: str) -> None:
    _, batch = _adversarial_batch(cell, 0.0)
    torch.manual_seed(0)  # E = 32: a random direction rarely points where the prediction moves
    config = ModelConfig(cell=cell, embed_dim=32, hidden_size=8, attention_size=4, dropout=0.0, embed_dropout=0.0)
    model = TextClassifier(40, 3, config).eval()  # no dropout: the KL is the perturbation's alone
    embedded = model.embed_tokens(batch.tokens).detach()  # (B, T, E)
    logits = model(batch.tokens, batch.lengths, embedded=embedded)
    torch.manual_seed(1)
    r = classify.virtual_adversarial_perturbation(model, batch, embedded, logits, eps=0.5, xi=1e-2)
    assert r.shape == embedded.shape and not r.requires_grad
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((4,), 0.5), atol=1e-6)
    for b, length in enumerate(batch.lengths.tolist()):
        assert (r[b, length:] == 0).all()
    with torch.no_grad():
        found = _kl_per_sentence(model, batch, embedded, embedded + r)  # (B,)
        randoms = []
        for seed in range(20):  # random directions of the same norm
            torch.manual_seed(100 + seed)
            random_r = classify._per_sentence_direction(torch.randn_like(embedded), batch.lengths, 0.5)
            randoms.append(_kl_per_sentence(model, batch, embedded, embedded + random_r))
        randoms = torch.stack(randoms)  # (20, B)
    assert (found > randoms.max(0).values).all() and (found > 5 * randoms.mean(0)).all(), (found, randoms)


def test_vat_step_adds_the_kl_and_needs_no_label() -> None:
    model, batch = _adversarial_batch("lstm", 0.0)
    step = classify.train_step_for(replace(model.config, vat_eps=0.5))
    torch.manual_seed(2)
    out = step(model, batch)
    assert set(out.metrics) == {"accuracy", "clean_loss", "vat_loss"}
    assert out.loss.item() == pytest.approx(out.metrics["clean_loss"] + out.metrics["vat_loss"], rel=1e-6)
    assert out.metrics["vat_loss"] > 0
    shuffled = replace(batch, labels=batch.labels.roll(1))
    torch.manual_seed(2)
    again = step(model, shuffled)  # the same random probe: the KL term does not read the labels
    assert again.metrics["vat_loss"] == pytest.approx(out.metrics["vat_loss"], rel=1e-6)
    assert again.metrics["clean_loss"] != pytest.approx(out.metrics["clean_loss"])


def test_cli_vat_with_adversarial_training_logs_and_minimizes_all_three_terms(tmp_path, capsys) -> None:
    run = train_tiny_from_cli(
        tmp_path, "--vat-eps", "1.0", "--vat-xi", "0.05", "--adversarial-eps", "0.5", "--log-every", "1"
    )
    model = json.loads((run / "config.json").read_text())["model"]
    assert (model["vat_eps"], model["vat_xi"], model["adversarial_eps"]) == (1.0, 0.05, 0.5)
    steps = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "train"]
    assert steps
    for r in steps:
        assert r["loss"] == pytest.approx(r["clean_loss"] + r["adversarial_loss"] + r["vat_loss"], rel=1e-5)


# ===================================================================== --resume: the run's own options, checked first
def _resumable_run_argv(tmp_path: Path, run: Path, epochs: int) -> list[str]:
    """``classify train`` with data, model and pretrain options that all differ from the defaults."""
    train = write_tsv(tmp_path / "train.tsv", order_sentences(96, seed=11))
    val = tmp_path / "val.tsv"
    val.write_text("label\tcontent\n" + "".join(f"{y}\t{t}\n" for t, y in order_sentences(24, seed=12)))
    argv = ["classify", "train", "--train", str(train), "--val", str(val), "--val-text-column", "content"]
    argv += ["--min-freq", "2", "--no-lowercase", "--cell", "gru", "--pool", "max", "--embed-dim", "8"]
    argv += ["--hidden-size", "6", "--dropout", "0.1", "--word-dropout", "0.1", "--pretrain-lm-epochs", "1"]
    return [*argv, "--batch-size", "16", "--epochs", str(epochs), "--run-dir", str(run), "--quiet"]


def test_cli_resume_alone_continues_the_run_exactly_with_its_own_options(tmp_path, capsys) -> None:
    straight, resumed = tmp_path / "a", tmp_path / "b"
    assert main(_resumable_run_argv(tmp_path, straight, epochs=2)) == 0
    assert main(_resumable_run_argv(tmp_path, resumed, epochs=1)) == 0
    assert main(["classify", "train", "--resume", str(resumed), "--epochs", "2", "--quiet"]) == 0
    a, b = (json.loads((r / "config.json").read_text()) for r in (straight, resumed))
    assert (a["data"], a["model"], a["pretrain"]) == (b["data"], b["model"], b["pretrain"])
    assert [r["val_accuracy"] for r in _evals(straight)] == [r["val_accuracy"] for r in _evals(resumed)]
    (_, wa), (_, wb) = load_run(straight, "last"), load_run(resumed, "last")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_with_other_model_or_encoding_options_is_refused_before_anything_is_written(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_resumable_run_argv(tmp_path, run, epochs=1)) == 0
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    resume = ["classify", "train", "--resume", str(run), "--epochs", "2", "--quiet"]
    _fails_cleanly([*resume, "--hidden-size", "7"], capsys, r"resume: .* was trained with the model options")
    saved = json.loads((run / "config.json").read_text())
    config = Config(
        DataConfig(**{**saved["data"], "train": str(tmp_path / "absent.tsv")}),  # checked before the data is read
        ModelConfig(**saved["model"]),
        TrainConfig(resume=str(run), quiet=True),
        PretrainConfig(**saved["pretrain"]),
    )
    with pytest.raises(ConfigError, match=r"encoded its text with the data options \{.*'lowercase': False"):
        classify.train(replace(config, data=replace(config.data, lowercase=True)))
    with pytest.raises(ConfigError, match=r"was trained with the model options"):
        classify.train(replace(config, model=replace(config.model, pool="mean")))
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_resume_of_another_tasks_run_is_one_line(tmp_path, capsys) -> None:
    other = tmp_path / "lm"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"task": "lm", "train": {}}))
    _fails_cleanly(["classify", "train", "--resume", str(other)], capsys, r"is a 'lm' run; expected a `rnnkit classify")
    assert sorted(p.name for p in other.iterdir()) == ["config.json"]


def test_resume_of_a_run_stopped_in_its_pretraining_says_so_and_writes_nothing(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_resumable_run_argv(tmp_path, run, epochs=1)) == 0
    shutil.rmtree(run / "checkpoints")  # what a run stopped during its pretraining leaves
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    pattern = r"resume: .* stopped during its language-model pretraining, which cannot be resumed"
    _fails_cleanly(["classify", "train", "--resume", str(run), "--quiet"], capsys, pattern)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_a_validation_label_training_never_saw_names_the_validation_file_and_line(tmp_path, capsys) -> None:
    train = write_tsv(tmp_path / "t.tsv", order_sentences(20, seed=1))
    val = write_tsv(tmp_path / "v.tsv", [("good film", "positive"), ("meh", "neutral")])
    argv = ["classify", "train", "--train", str(train), "--val", str(val), "--run-dir", str(tmp_path / "r")]
    _fails_cleanly(argv, capsys, r"v\.tsv:3: label 'neutral' was never seen in training; expected one of \['neg")
    assert not (tmp_path / "r").exists()
