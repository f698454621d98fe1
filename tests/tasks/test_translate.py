"""Tests of rnnkit.tasks.translate: the decoder's step path against teacher forcing, padding
invariance, beam search against greedy and exhaustive search, learning a toy translation, the
three CLI jobs, and one clear error (exit status 2) for each kind of bad input."""

from __future__ import annotations

import io
import itertools
import json
import random
import re
import shutil
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.parallel import ParallelText, read_parallel
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.tasks import translate
from rnnkit.tasks.translate import (
    Config,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    SentenceVocab,
    Seq2Seq,
    Translator,
    beam_search,
    encode_pairs,
    greedy_decode,
    sequence_log_prob,
)
from rnnkit.train import TrainConfig, load_run

SOURCE_WORDS = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]
MULTI30K = Path(__file__).resolve().parents[3] / "shared" / "data" / "multi30k"


def toy_pairs(n: int, seed: int) -> ParallelText:
    """The toy language pair: the target is the source backwards, each word ``w`` spelled ``xw``."""
    rng = random.Random(seed)
    sources, targets = [], []
    for _ in range(n):
        words = [rng.choice(SOURCE_WORDS) for _ in range(rng.randint(2, 6))]
        sources.append(" ".join(words))
        targets.append(" ".join("x" + w for w in reversed(words)))
    return ParallelText("toy.src", "toy.tgt", sources, targets)


def write_pairs(folder: Path, name: str, pairs: ParallelText) -> tuple[Path, Path]:
    src, tgt = folder / f"{name}.src", folder / f"{name}.tgt"
    src.write_text("\n".join(pairs.sources) + "\n", encoding="utf-8")
    tgt.write_text("\n".join(pairs.targets) + "\n", encoding="utf-8")
    return src, tgt


def tiny_model(attention: str = "general", cell: str = "gru", layers: int = 1, seed: int = 0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    config = ModelConfig(
        cell=cell, embed_dim=12, hidden_size=8, num_layers=layers, attention=attention, attention_size=10, **kw
    )
    return Seq2Seq(15, 9, config).eval()


def random_batch(B: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (B,), generator=g)
    source = torch.randint(4, 15, (B, int(lengths.max())), generator=g)
    source[torch.arange(source.shape[1]) >= lengths[:, None]] = 0
    return source, lengths


# ---------------------------------------------------------------- vocabulary
def test_sentence_vocab_reserves_four_ids_and_decodes_to_text(tmp_path):
    vocab = SentenceVocab.build(["A dog runs .", "a dog sits", "a cat"], min_freq=2)
    assert vocab.vocab.words == ["<pad>", "<unk>", "<s>", "</s>", "a", "dog"]
    ids = vocab.encode("A dog flies .")
    assert ids == [4, 5, vocab.unk_id, vocab.unk_id]
    assert vocab.decode([vocab.bos_id, 4, 5, 0, vocab.eos_id, 4]) == "a dog"
    vocab.save(tmp_path / "v.json")
    assert SentenceVocab.load(tmp_path / "v.json", lowercase=True).vocab.words == vocab.vocab.words


def test_a_vocabulary_without_the_reserved_words_is_refused(tmp_path):
    from rnnkit.data.vocab import WordVocab

    WordVocab(["<pad>", "<unk>", "dog"]).save(tmp_path / "v.json")
    with pytest.raises(CheckpointError, match=r"v\.json: .*<s>"):
        SentenceVocab.load(tmp_path / "v.json", lowercase=True)


# ---------------------------------------------------------------- the model
@pytest.mark.parametrize(
    ("attention", "cell", "layers"),
    [("general", "gru", 1), ("additive", "lstm", 2), ("dot", "gru", 2), ("none", "lstm", 2)],
)
def test_stepping_the_decoder_gives_the_teacher_forced_log_probs(attention, cell, layers):
    """The translation path (encode, then one ``step`` per word) computes what training does."""
    model = tiny_model(attention, cell, layers)
    source, lengths = random_batch()
    target = torch.randint(4, 9, (4, 5))
    target[:, 0] = SentenceVocab.bos_id
    with torch.no_grad():
        forced = torch.log_softmax(model(source, lengths, target), dim=-1)  # (B, T, V)
        encoded, state = model.encode(source, lengths)
        for t in range(target.shape[1]):
            step, state = model.step(target[:, t], state, encoded)
            torch.testing.assert_close(step, forced[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_a_sentence_translates_the_same_alone_or_padded_in_a_batch(attention):
    model = tiny_model(attention)
    source, lengths = random_batch(B=5)
    target = torch.randint(4, 9, (5, 4))
    with torch.no_grad():
        batched = model(source, lengths, target)
        for b in range(5):
            n = int(lengths[b])
            alone = model(source[b : b + 1, :n], lengths[b : b + 1], target[b : b + 1])
            torch.testing.assert_close(alone[0], batched[b], atol=1e-5, rtol=1e-5)


def test_tied_output_layer_shares_the_target_embedding_and_survives_a_checkpoint(tmp_path):
    from rnnkit.train.checkpoint import weights_for_saving

    model = Seq2Seq(10, 11, ModelConfig(embed_dim=16, hidden_size=8, tie_weights=True))
    assert model.out.weight is model.target_embed.weight
    saved = weights_for_saving(model.state_dict())
    fresh = Seq2Seq(10, 11, ModelConfig(embed_dim=16, hidden_size=8, tie_weights=True))
    fresh.load_state_dict(saved)
    assert torch.equal(fresh.out.weight, model.target_embed.weight)
    with pytest.raises(ConfigError, match="tie_weights"):
        ModelConfig(embed_dim=12, hidden_size=8, tie_weights=True).validate()


# ---------------------------------------------------------------- search
@pytest.mark.parametrize("eos_bias", [0.0, 0.3])
def test_beam_of_one_is_greedy_search(eos_bias):
    """(With ``eos_bias`` 0.3 the end is the second choice at some steps of 4 of these 16 sentences:
    a beam of one must not take it there.)"""
    model = tiny_model()
    with torch.no_grad():
        model.out.bias[SentenceVocab.eos_id] += eos_bias
    source, lengths = random_batch(B=16, seed=3)
    config = DecodeConfig(beam_size=1, max_len_a=1.0, max_len_b=4)
    greedy = greedy_decode(model, source, lengths, config)
    beam = beam_search(model, source, lengths, config)
    assert [h.ids for h in beam] == [h.ids for h in greedy]
    for g, b in zip(greedy, beam, strict=True):
        assert b.log_prob == pytest.approx(g.log_prob, abs=1e-5)


def test_beam_scores_are_the_model_log_probs_of_their_outputs():
    model = tiny_model("additive", "lstm")
    source, lengths = random_batch(B=5, seed=4)
    hyps = beam_search(model, source, lengths, DecodeConfig(beam_size=3, max_len_a=0.0, max_len_b=6))
    target = torch.zeros(5, 1 + max(len(h.ids) for h in hyps), dtype=torch.long)
    target[:, 0] = SentenceVocab.bos_id
    for b, h in enumerate(hyps):
        target[b, 1 : 1 + len(h.ids)] = torch.tensor(h.ids)
    with torch.no_grad():
        forced = sequence_log_prob(model, source, lengths, target)
    # a hypothesis cut at the length limit has no </s>; padding (id 0) after it is not counted
    torch.testing.assert_close(forced, torch.tensor([h.log_prob for h in hyps]), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_a_beam_wider_than_all_outputs_is_exact_search(length_penalty):
    """With V = 9 target ids and a limit of 2 words, the outputs are ``</s>`` alone and the 8 * 9
    two-word ones (ending in ``</s>`` or cut): a beam of 100 keeps them all, so it must return the
    best of an exhaustive enumeration."""
    model = tiny_model("general", "gru", seed=5)
    source, lengths = random_batch(B=2, seed=6)
    config = DecodeConfig(beam_size=100, length_penalty=length_penalty, max_len_a=0.0, max_len_b=2)
    found = beam_search(model, source, lengths, config)
    eos = SentenceVocab.eos_id
    for b in range(2):
        outputs = [[eos]] + [[w, v] for w, v in itertools.product(range(9), repeat=2) if w != eos]
        best, best_score = None, -float("inf")
        for ids in outputs:
            target = torch.tensor([[SentenceVocab.bos_id, *ids]])
            with torch.no_grad():
                logits = model(source[b : b + 1], lengths[b : b + 1], target[:, :-1])
            log_prob = torch.log_softmax(logits, -1)[0].gather(-1, target[0, 1:, None]).sum().item()
            score = log_prob / len(ids) ** length_penalty
            if score > best_score:
                best, best_score = ids, score
        assert found[b].ids == best
        assert found[b].log_prob / len(found[b].ids) ** length_penalty == pytest.approx(best_score, abs=1e-5)


def test_output_stops_at_the_length_limit():
    model = tiny_model()
    source, lengths = random_batch(B=3, seed=7)
    config = DecodeConfig(beam_size=2, max_len_a=0.5, max_len_b=1)
    for search in (greedy_decode, beam_search):
        for h, n in zip(search(model, source, lengths, config), lengths.tolist(), strict=True):
            assert 1 <= len(h.ids) <= int(0.5 * n) + 1


@pytest.mark.parametrize(
    ("field", "value"), [("beam_size", 0), ("length_penalty", -1.0), ("max_len_a", -0.5), ("max_len_b", 0)]
)
def test_decode_config_is_checked(field, value):
    with pytest.raises(ConfigError, match=field):
        DecodeConfig(**{field: value}).validate()


# ---------------------------------------------------------------- learning
def toy_config(tmp_path: Path, steps: int = 300, **train) -> Config:
    train_src, train_tgt = write_pairs(tmp_path, "train", toy_pairs(2000, 0))
    val_src, val_tgt = write_pairs(tmp_path, "val", toy_pairs(60, 1))
    return Config(
        data=DataConfig(str(train_src), str(train_tgt), str(val_src), str(val_tgt), min_freq=1),
        model=ModelConfig(embed_dim=32, hidden_size=32, dropout=0.0, attention="additive", attention_size=32),
        decode=DecodeConfig(beam_size=3),
        train=TrainConfig(
            steps=steps, batch_size=32, lr=3e-3, eval_every=steps, quiet=True, run_dir=str(tmp_path / "run"), **train
        ),
    )


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("toy")
    result = translate.train(toy_config(folder))
    return result.run_dir


def test_the_model_learns_to_translate_the_toy_language(toy_run):
    val = read_parallel(toy_run.parent / "val.src", toy_run.parent / "val.tgt")
    report = Translator.load(toy_run).evaluate(val)
    assert report["bleu"] > 80.0
    exact = sum(h == r for h, r in zip(report["hypotheses"], val.targets, strict=True)) / len(val)
    assert exact > 0.7
    assert Translator.load(toy_run).translate(["a b c"], beam_size=1) == ["xc xb xa"]


def test_attention_of_the_toy_translation_looks_at_the_mirrored_source_word(toy_run):
    """The toy target is the source backwards: output word t translates source word S-1-t."""
    translator = Translator.load(toy_run)
    source = translator.source_vocab.encode("a b c d e")
    output = [*translator.target_vocab.encode("xe xd xc xb xa"), SentenceVocab.eos_id]
    weights = translate.attention_map(translator.model, source, output)  # (T, S)
    assert weights.shape == (6, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(6))
    assert weights[:5].argmax(-1).tolist() == [4, 3, 2, 1, 0]


def test_the_run_folder_has_vocabularies_eval_files_and_a_report(toy_run):
    assert (toy_run / "source_vocab.json").exists() and (toy_run / "target_vocab.json").exists()
    report = (toy_run / "report.md").read_text()
    assert "## Translation" in report and "BLEU" in report and "plots/attention.png" in report
    assert (toy_run / "plots" / "attention.png").stat().st_size > 1000
    saved = json.loads((toy_run / "eval" / "val.src" / "report.json").read_text())
    assert saved["beam_size"] == 3 and saved["bleu"] > 80.0
    rows = [json.loads(line) for line in (toy_run / "metrics.jsonl").read_text().splitlines()]
    assert any("val_greedy_bleu" in row for row in rows)


def test_training_is_deterministic(tmp_path):
    results = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        results.append(translate.train(toy_config(tmp_path / name, steps=15)))
    assert results[0].train_loss == results[1].train_loss
    assert results[0].best_metric == results[1].best_metric


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    straight = translate.train(toy_config(tmp_path, steps=20))
    config = toy_config(tmp_path, steps=10)
    config.train.run_dir = str(tmp_path / "resumed")
    translate.train(config)
    config.train.steps, config.train.resume = 20, str(tmp_path / "resumed")
    resumed = translate.train(config)
    assert resumed.steps == 20
    a = load_run(straight.run_dir, "last")[1]
    b = load_run(resumed.run_dir, "last")[1]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_subword_vocabularies_learn_the_toy_language_too(tmp_path):
    config = toy_config(tmp_path, steps=250)
    config.data.vocab, config.data.subword_size = "subword", 300
    result = translate.train(config)
    assert (result.run_dir / "source_tokenizer.json").exists() and not (result.run_dir / "source_vocab.json").exists()
    translator = Translator.load(result.run_dir)
    ids = translator.target_vocab.encode("xc xb xa")
    assert min(ids) >= 4 and translator.target_vocab.decode([*ids, SentenceVocab.eos_id, 9]) == "xc xb xa"
    val = read_parallel(tmp_path / "val.src", tmp_path / "val.tgt")
    assert translator.evaluate(val, beam_size=1)["bleu"] > 60.0
    with pytest.raises(ConfigError, match="subword_size"):
        DataConfig("a", "b", vocab="subword", subword_size=100).validate()


# ---------------------------------------------------------------- command line
def test_cli_eval_and_predict(toy_run, tmp_path, capsys, monkeypatch):
    val_src, val_tgt = toy_run.parent / "val.src", toy_run.parent / "val.tgt"
    out = tmp_path / "eval"
    assert main(["translate", "eval", "--run", str(toy_run), "--source", str(val_src), "--target", str(val_tgt),
                 "--beam", "1", "--out-dir", str(out)]) == 0  # fmt: skip
    assert "BLEU" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["beam_size"] == 1
    assert len((out / "hypotheses.txt").read_text().splitlines()) == 60

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"a b c\nd e\n")))
    assert main(["translate", "predict", "--run", str(toy_run), "--beam", "2"]) == 0
    assert capsys.readouterr().out == "xc xb xa\nxe xd\n"
    target = tmp_path / "out.txt"
    (tmp_path / "in.txt").write_text("a b c\n")
    assert main(["translate", "predict", "--run", str(toy_run), "--input", str(tmp_path / "in.txt"),
                 "--output", str(target)]) == 0  # fmt: skip
    assert target.read_text() == "xc xb xa\n"


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    status = main(argv)
    return status, capsys.readouterr().err


def test_cli_bad_training_data_is_one_line_and_status_2(tmp_path, capsys):
    src, tgt = write_pairs(tmp_path, "t", toy_pairs(5, 0))
    short = tmp_path / "short.tgt"
    short.write_text("xa\nxb\n")
    base = ["translate", "train", "--run-dir", str(tmp_path / "run"), "--steps", "1"]
    status, err = run_cli([*base, "--train-source", str(src), "--train-target", str(short)], capsys)
    assert status == 2 and "5 sentences, but" in err and "short.tgt has 2" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    holey = tmp_path / "holey.src"
    holey.write_text("a\n\nb\nc\nd\n")
    status, err = run_cli([*base, "--train-source", str(holey), "--train-target", str(tgt)], capsys)
    assert status == 2 and "holey.src:2: empty line" in err
    status, err = run_cli([*base, "--train-source", str(src)], capsys)
    assert status == 2 and "train_target" in err
    status, err = run_cli(
        [*base, "--train-source", str(src), "--train-target", str(tgt), "--val-source", str(src)], capsys
    )
    assert status == 2 and "val_target" in err
    status, err = run_cli([*base, "--train-source", str(src), "--train-target", str(tgt), "--beam-size", "0"], capsys)
    assert status == 2 and "beam_size" in err
    assert not (tmp_path / "run").exists()


def test_cli_bad_run_or_input_is_one_line_and_status_2(toy_run, tmp_path, capsys):
    status, err = run_cli(["translate", "predict", "--run", str(tmp_path / "nothing")], capsys)
    assert status == 2 and "no such run folder" in err
    status, err = run_cli(["translate", "eval", "--run", str(toy_run)], capsys)
    assert status == 2 and "--source: required" in err
    status, err = run_cli(["translate", "predict", "--run", str(toy_run), "--beam", "0"], capsys)
    assert status == 2 and "--beam" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("a b\n\nc\n")
    status, err = run_cli(["translate", "predict", "--run", str(toy_run), "--input", str(empty)], capsys)
    assert status == 2 and "empty.txt:2: empty line" in err


def test_a_run_of_another_task_is_refused(tmp_path):
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"task": "classify"}))
    with pytest.raises(CheckpointError):
        Translator.load(folder)


def test_translate_refuses_an_empty_sentence(toy_run):
    with pytest.raises(ValueError, match=r"sentences\[1\]"):
        Translator.load(toy_run).translate(["a b", "  "])


def test_data_errors_name_the_file(tmp_path):
    pairs = ParallelText("x.src", "x.tgt", ["a", ""], ["xa", "xb"])
    vocab = SentenceVocab.build(["a"])
    with pytest.raises(DataError, match=r"x\.src:2"):
        encode_pairs(pairs, vocab, vocab)


def small_config(tmp_path: Path, steps: int) -> Config:
    """The toy task on a smaller model than :func:`toy_config`'s."""
    config = toy_config(tmp_path, steps=steps)
    config.model = ModelConfig(embed_dim=8, hidden_size=8, dropout=0.1, attention="dot")
    return config


def test_resume_takes_the_runs_data_and_model_and_leaves_its_config_intact(tmp_path, capsys):
    """``--resume RUN`` alone continues the run: its data and model sections come from the run's
    ``config.json`` (a command line with the defaults instead would rebuild another model, fail
    on its weights, and overwrite the run's config with the wrong one)."""
    train_src, train_tgt = write_pairs(tmp_path, "train", toy_pairs(300, 0))
    val_src, val_tgt = write_pairs(tmp_path, "val", toy_pairs(20, 1))
    data = ["--train-source", str(train_src), "--train-target", str(train_tgt), "--val-source", str(val_src),
            "--val-target", str(val_tgt), "--min-freq", "1", "--no-lowercase", "--embed-dim", "8", "--hidden-size",
            "8", "--attention", "dot", "--dropout", "0.1", "--beam-size", "2"]  # fmt: skip
    common = ["translate", "train", "--batch-size", "16", "--schedule", "constant", "--eval-every", "6", "--quiet"]
    assert main([*common, *data, "--steps", "12", "--run-dir", str(tmp_path / "straight")]) == 0
    assert main([*common, *data, "--steps", "6", "--run-dir", str(tmp_path / "resumed")]) == 0
    saved = json.loads((tmp_path / "resumed" / "config.json").read_text())
    status = main([*common, "--steps", "12", "--resume", str(tmp_path / "resumed")])
    assert status == 0, capsys.readouterr().err
    again = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert again["data"] == saved["data"] and again["model"] == saved["model"]
    a = load_run(tmp_path / "straight", "last")[1]
    b = load_run(tmp_path / "resumed", "last")[1]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_model_option_given_with_resume_is_refused_not_ignored(tmp_path, capsys):
    train_src, train_tgt = write_pairs(tmp_path, "train", toy_pairs(100, 0))
    data = ["--train-source", str(train_src), "--train-target", str(train_tgt), "--min-freq", "1",
            "--embed-dim", "8", "--hidden-size", "8"]  # fmt: skip
    common = ["translate", "train", "--batch-size", "16", "--quiet"]
    assert main([*common, *data, "--steps", "2", "--run-dir", str(tmp_path / "run")]) == 0
    resume = [*common, "--steps", "4", "--resume", str(tmp_path / "run")]
    assert main([*resume, "--hidden-size", "16"]) == 2
    assert "hidden_size: " in capsys.readouterr().err
    assert main([*resume, "--hidden-size", "8"]) == 0


def test_resuming_a_run_of_another_task_or_no_run_is_refused(tmp_path):
    config = small_config(tmp_path, steps=1)
    config.train.resume = str(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match=r"nothing.*config\.json"):
        translate.train(config)
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"task": "classify"}))
    config.train.resume = str(folder)
    with pytest.raises(ConfigError, match="is a 'classify' run; expected a `rnnkit translate train` run"):
        translate.train(config)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("model", "embed_dim", "big"), ("decode", "beam_size", None), ("data", "min_freq", [1])],
)
def test_a_hand_edited_config_with_a_wrong_type_is_one_line(toy_run, tmp_path, capsys, section, key, value):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    saved = json.loads((run / "config.json").read_text())
    saved[section][key] = value
    (run / "config.json").write_text(json.dumps(saved))
    (tmp_path / "in.txt").write_text("a b\n")
    status, err = run_cli(["translate", "predict", "--run", str(run), "--input", str(tmp_path / "in.txt")], capsys)
    assert status == 2 and "config.json" in err and key in err and "Traceback" not in err


def corrupt(run: Path, how: str) -> None:
    """Break the run folder ``run`` in the way ``how`` names."""
    best = run / "checkpoints" / "best"
    if how == "no checkpoints":
        shutil.rmtree(run / "checkpoints")
    elif how == "truncated weights":
        (best / "model.safetensors").write_bytes((best / "model.safetensors").read_bytes()[:100])
    elif how == "empty meta":
        (best / "meta.json").write_text("")
    elif how == "no target vocabulary":
        (run / "target_vocab.json").unlink()
    elif how == "vocabulary of another size":
        SentenceVocab.build(["a"]).save(run / "target_vocab.json")
    elif how == "garbage vocabulary":
        (run / "source_vocab.json").write_bytes(b"\xff\xfe")


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("no checkpoints", "checkpoint"),
        ("truncated weights", r"best/model\.safetensors"),
        ("empty meta", r"best/meta\.json"),
        ("no target vocabulary", r"target_vocab\.json: cannot read"),
        ("vocabulary of another size", "do not fit"),
        ("garbage vocabulary", r"source_vocab\.json"),
    ],
)
def test_eval_and_predict_on_a_broken_run_are_one_line_and_write_nothing(toy_run, tmp_path, capsys, how, message):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("eval"))
    corrupt(run, how)
    val_src, val_tgt = toy_run.parent / "val.src", toy_run.parent / "val.tgt"
    out = tmp_path / "out.txt"
    status, err = run_cli(
        ["translate", "predict", "--run", str(run), "--input", str(val_src), "--output", str(out)], capsys
    )
    assert status == 2 and re.search(message, err) and "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists()
    status, err = run_cli(
        ["translate", "eval", "--run", str(run), "--source", str(val_src), "--target", str(val_tgt)], capsys
    )
    assert status == 2 and re.search(message, err) and len(err.splitlines()) == 1
    assert not (run / "eval").exists()


def test_beam_search_translates_a_padded_batch_as_each_sentence_alone():
    """Sentences of different lengths in one batch (and batches split by translate_ids) get the
    hypotheses and scores they get alone: padding, length limits and the beam's row bookkeeping
    keep sentences apart."""
    for attention, cell in [("general", "gru"), ("additive", "lstm")]:
        model = tiny_model(attention, cell, seed=2)
        with torch.no_grad():
            model.out.bias[SentenceVocab.eos_id] += 0.5  # some sentences end early, others at their limit
        source, lengths = random_batch(B=8, seed=11)
        for K in (2, 3):
            config = DecodeConfig(beam_size=K, max_len_a=1.0, max_len_b=3)
            batched = beam_search(model, source, lengths, config)
            sentences = [source[b, : int(lengths[b])].tolist() for b in range(8)]
            chunked = translate.translate_ids(model, sentences, config, batch_size=3)
            for b in range(8):
                n = int(lengths[b])
                (alone,) = beam_search(model, source[b : b + 1, :n], lengths[b : b + 1], config)
                assert batched[b].ids == alone.ids == chunked[b].ids
                assert batched[b].log_prob == pytest.approx(alone.log_prob, abs=1e-5)
                assert len(alone.ids) <= n + 3


def test_predict_takes_unknown_words_and_overlong_lines(toy_run, tmp_path, capsys):
    """Words and characters training never saw are <unk>, not an error; a line far longer than
    any training sentence is translated, cut at the length limit; one output line per input."""
    long_line = " ".join(["a", "b", "c"] * 100)
    (tmp_path / "in.txt").write_text(f"a zebra b\nÜber 日本 🐶\n{long_line}\na b c\n", encoding="utf-8")
    status = main(["translate", "predict", "--run", str(toy_run), "--input", str(tmp_path / "in.txt"), "--beam", "2"])
    lines = capsys.readouterr().out.split("\n")
    assert status == 0 and lines[-1] == "" and len(lines) == 5
    assert lines[3] == "xc xb xa"
    decode = Translator.load(toy_run).decode
    assert 1 <= len(lines[2].split()) <= decode.max_length(300)
    assert all("</s>" not in line for line in lines)


# ---------------------------------------------------------------- real data
@pytest.mark.skipif(not MULTI30K.is_dir(), reason="needs ../shared/data/multi30k (absent in a user's clone)")
def test_multi30k_trains_and_translates(tmp_path):
    config = Config(
        data=DataConfig(
            str(MULTI30K / "train.de"),
            str(MULTI30K / "train.en"),
            str(MULTI30K / "val.de"),
            str(MULTI30K / "val.en"),
            max_train_pairs=1500,
        ),
        model=ModelConfig(embed_dim=32, hidden_size=32),
        decode=DecodeConfig(beam_size=2),
        train=TrainConfig(steps=40, batch_size=32, lr=3e-3, quiet=True, run_dir=str(tmp_path / "run")),
    )
    result = translate.train(config)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if row.get("kind") == "train"]
    assert losses[-1] < losses[0] - 1.0
    assert "## Translation" in (result.run_dir / "report.md").read_text()
    (out,) = Translator.load(result.run_dir).translate(["Ein Mann fährt Fahrrad."])
    assert out and "</s>" not in out


@pytest.mark.skipif(not MULTI30K.is_dir(), reason="needs ../shared/data/multi30k (absent in a user's clone)")
def test_multi30k_subwords_round_trip_train_and_translate_any_text(tmp_path, capsys):
    """``--vocab subword`` on real text (300 Multi30k pairs, a few seconds): every sentence
    encodes and decodes back to itself (lower-cased), the loss falls, and predict takes text with
    characters training never saw."""
    files = {}
    for split, n in (("train", 300), ("val", 30)):
        for side in ("de", "en"):
            lines = (MULTI30K / f"{split}.{side}").read_text(encoding="utf-8").splitlines()[:n]
            files[split, side] = tmp_path / f"{split}.{side}"
            files[split, side].write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    argv = ["translate", "train", "--train-source", str(files["train", "de"]), "--train-target",
            str(files["train", "en"]), "--val-source", str(files["val", "de"]), "--val-target",
            str(files["val", "en"]), "--vocab", "subword", "--subword-size", "500", "--embed-dim", "32",
            "--hidden-size", "32", "--steps", "60", "--batch-size", "32", "--lr", "3e-3", "--eval-every", "60",
            "--warmup", "0", "--beam-size", "2", "--max-len-b", "5", "--run-dir", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    translator = Translator.load(run)
    for side, vocab in (("de", translator.source_vocab), ("en", translator.target_vocab)):
        for line in read_parallel(files["train", side], files["train", side]).sources:
            ids = vocab.encode(line)
            assert min(ids) >= 4 and vocab.decode([*ids, SentenceVocab.eos_id, 5]) == line.lower()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if row.get("kind") == "train"]
    assert losses[-1] < losses[0] - 1.0
    (tmp_path / "in.de").write_text("Ein Mann fährt Fahrrad.\nZwei 🐶 sehen Ärger 日本\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", "predict", "--run", str(run), "--input", str(tmp_path / "in.de")]) == 0
    out = capsys.readouterr().out.split("\n")
    assert len(out) == 3 and all(out[:2]) and out[2] == ""
