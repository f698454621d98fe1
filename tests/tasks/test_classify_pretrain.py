"""Tests of rnnkit.tasks.classify_pretrain: the biLM's targets and padding, the held-out split,
the engine options of the pretraining run, and its refusals. (The end-to-end pretraining of a
classifier is tested in tests/tasks/test_classify.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnkit.errors import ConfigError
from rnnkit.tasks import classify
from rnnkit.tasks.classify import ModelConfig
from rnnkit.tasks.classify_pretrain import (
    HELDOUT_EVERY,
    PretrainConfig,
    collate_lm,
    lm_loss,
    pretrain,
    pretrain_train_config,
    split_heldout,
)
from rnnkit.train import TrainConfig


def _bilm(bidirectional: bool = True, cell: str = "lstm"):
    torch.manual_seed(0)
    model = ModelConfig(cell=cell, embed_dim=6, hidden_size=5, bidirectional=bidirectional, embed_dropout=0.0)
    return classify.build_bilm(20, model, PretrainConfig(epochs=1, dropout=0.0)).eval()


@pytest.mark.parametrize("bidirectional", [True, False])
def test_targets_are_the_next_and_previous_words_within_each_length(bidirectional: bool) -> None:
    bilm = _bilm(bidirectional)
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 9]])  # the second row's last 9 sits past its length
    _, targets = bilm.predictions(tokens, torch.tensor([4, 3]))
    forward = [4, 5, 6, 8, 9]  # words 1.. of each sequence, in (row, t) order
    backward = [3, 4, 5, 7, 8]  # words ..length-2
    assert targets.tolist() == forward + (backward if bidirectional else [])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_sequence_predicts_the_same_alone_or_padded_with_anything(cell: str) -> None:
    bilm = _bilm(cell=cell)
    short = torch.tensor([[3, 4, 5]])
    h_alone, y_alone = bilm.predictions(short, torch.tensor([3]))
    batch = torch.tensor([[3, 4, 5, 11, 12, 13], [1, 2, 3, 4, 5, 6]])  # non-zero garbage past length 3
    h, y = bilm.predictions(batch, torch.tensor([3, 6]))
    rows = [0, 1, 7, 8]  # the short sequence's rows: forward t = 0, 1, then backward t = 1, 2
    assert y[rows].tolist() == y_alone.tolist()
    assert torch.allclose(h[rows], h_alone, atol=1e-6)


def test_lm_loss_is_the_mean_cross_entropy_per_predicted_word_in_eval_mode() -> None:
    bilm = _bilm()
    sequences = [[3, 4, 5, 6], [7, 8], [9, 10, 11]]
    bilm.train()  # lm_loss must switch dropout off itself
    loss = lm_loss(bilm, sequences, batch_size=2)
    batch = collate_lm(sequences, range(3))
    h, targets = bilm.predictions(batch.tokens, batch.lengths)
    assert targets.numel() == 2 * (3 + 1 + 2)
    assert loss == pytest.approx(F.cross_entropy(bilm.decode(h), targets).item(), rel=1e-5)
    assert not bilm.training


def test_one_sequence_in_fifty_is_held_out_seeded_and_at_least_one_of_a_few() -> None:
    many = [[i, i + 1] for i in range(120)]
    train, held = split_heldout(many, seed=3)
    assert len(held) == -(-120 // HELDOUT_EVERY) and len(train) + len(held) == 120
    assert sorted(map(tuple, train + held)) == sorted(map(tuple, many))
    assert split_heldout(many, seed=3) == (train, held) and split_heldout(many, seed=4)[1] != held
    assert [len(part) for part in split_heldout(many[:5], seed=0)] == [4, 1]
    assert split_heldout(many[:1], seed=0) == (many[:1], [])


def test_the_pretraining_run_takes_its_length_batch_and_lr_and_the_runs_optimizer_and_seed(tmp_path) -> None:
    train = TrainConfig(lr=1.0, batch_size=99, optimizer="sgd", clip_norm=2.0, seed=7, quiet=True)
    config = pretrain_train_config(PretrainConfig(epochs=3, batch_size=16, lr=5e-3), train, tmp_path / "p", n=1000)
    assert (config.epochs, config.batch_size, config.lr, config.schedule) == (3, 16, 5e-3, "cosine")
    assert (config.optimizer, config.clip_norm, config.seed, config.quiet) == ("sgd", 2.0, 7, True)
    assert config.warmup == min(200, 63 * 3 // 10) and (config.monitor, config.mode) == ("loss", "min")
    assert config.run_dir == str(tmp_path / "p")


@pytest.mark.parametrize(
    ("pretrain_config", "pattern"),
    [
        (PretrainConfig(epochs=True), r"pretrain\.epochs \(--pretrain-lm-epochs\): expected an integer >= 0"),
        (PretrainConfig(text="every"), r"pretrain\.text: expected one of \['longest', 'all'\], got 'every'"),
        (PretrainConfig(batch_size=0), r"pretrain\.batch_size: expected an integer >= 1, got 0"),
    ],
)
def test_bad_pretrain_config_names_the_field(pretrain_config: PretrainConfig, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        pretrain_config.validate()


def test_pretraining_with_no_text_is_refused_before_any_folder_is_made(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no text of two or more tokens"):
        pretrain(_bilm(), [], PretrainConfig(epochs=1), TrainConfig(quiet=True), tmp_path / "p", None, {})
    assert not (tmp_path / "p").exists()
