"""Regularizers: LockedDropout, EmbeddingDropout, and the layers' recurrent_dropout, zoneout, weight_drop."""

from __future__ import annotations

import warnings

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn.dropout import sequence_mask


def test_locked_dropout_same_mask_every_step_expected_fraction_and_eval_identity():
    torch.manual_seed(0)
    drop = rnn.LockedDropout(0.3)
    x = torch.ones(200, 7, 50)
    y = drop(x)
    kept = y != 0  # (B, T, F)
    assert torch.equal(kept, kept[:, :1].expand_as(kept))  # one mask per sequence, every step
    assert abs((~kept[:, 0]).float().mean().item() - 0.3) < 0.02
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert torch.equal(drop.eval()(x), x)


def test_locked_dropout_time_first():
    torch.manual_seed(0)
    y = rnn.LockedDropout(0.5, batch_first=False)(torch.ones(6, 40, 10))  # (T, B, F)
    assert torch.equal(y, y[:1].expand_as(y))


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    emb = rnn.EmbeddingDropout(1000, 8, p=0.25)
    ids = torch.arange(1000).repeat(2, 1)  # every word twice, in two rows
    out = emb(ids)  # (2, 1000, 8)
    dropped = (out == 0).all(-1)  # (2, 1000)
    assert torch.equal(dropped[0], dropped[1])  # a word is dropped everywhere it occurs
    assert abs(dropped[0].float().mean().item() - 0.25) < 0.04
    kept = ~dropped[0]
    torch.testing.assert_close(out[0, kept], emb.weight[kept] / 0.75)
    emb.eval()
    assert torch.equal(emb(ids), torch.nn.functional.embedding(ids, emb.weight))


def test_sequence_mask_fraction_and_scale():
    torch.manual_seed(0)
    mask = sequence_mask(400, 100, 0.25, torch.empty(0))
    assert abs((mask == 0).float().mean().item() - 0.25) < 0.01
    torch.testing.assert_close(mask.unique(), torch.tensor([0.0, 1 / 0.75]))


def hand_lstm(layer, x, mask=None):
    """An LSTM over time written out, with ``h_{t-1} * mask`` in the recurrent product."""
    W_ih, W_hh, b = layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0 + layer.bias_hh_l0
    H = layer.hidden_size
    h, c, outs = x.new_zeros(x.shape[0], H), x.new_zeros(x.shape[0], H), []
    for t in range(x.shape[1]):
        hr = h if mask is None else h * mask
        i, f, g, o = (x[:, t] @ W_ih.T + hr @ W_hh.T + b).split(H, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def hand_gru(layer, x, mask):
    W_ih, W_hh, b_ih, b_hh = layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0
    H = layer.hidden_size
    h, outs = x.new_zeros(x.shape[0], H), []
    for t in range(x.shape[1]):
        xr, xz, xn = (x[:, t] @ W_ih.T + b_ih).split(H, dim=1)
        hr, hz, hn = ((h * mask) @ W_hh.T + b_hh).split(H, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h  # the interpolation uses h itself, unmasked
        outs.append(h)
    return torch.stack(outs, 1)


def test_recurrent_dropout_lstm_one_mask_for_all_steps():
    torch.manual_seed(0)
    layer = rnn.LSTM(3, 5, recurrent_dropout=0.4)
    x = torch.randn(4, 6, 3)
    torch.manual_seed(1)
    out, (h_n, c_n) = layer(x)
    torch.manual_seed(1)
    mask = torch.empty(4, 5).bernoulli_(0.6) / 0.6  # the one (B, H) mask the layer draws
    expected, h, c = hand_lstm(layer, x, mask)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(h_n[0], h)
    torch.testing.assert_close(c_n[0], c)


def test_recurrent_dropout_gru_masks_only_the_recurrent_product():
    torch.manual_seed(0)
    layer = rnn.GRU(3, 5, recurrent_dropout=0.4)
    x = torch.randn(4, 6, 3)
    torch.manual_seed(1)
    out, _ = layer(x)
    torch.manual_seed(1)
    mask = torch.empty(4, 5).bernoulli_(0.6) / 0.6
    torch.testing.assert_close(out, hand_gru(layer, x, mask))


LAYER_KINDS = [rnn.RNN, rnn.LSTM, rnn.GRU, rnn.LayerNormLSTM, rnn.LayerNormGRU, rnn.IndRNN]


@pytest.mark.parametrize("cls", LAYER_KINDS)
@pytest.mark.parametrize("option", ["recurrent_dropout", "weight_drop"])
def test_dropouts_are_identity_in_eval_and_random_in_train(cls, option):
    torch.manual_seed(0)
    plain = cls(3, 5, num_layers=2, bidirectional=True, impl="loop")
    dropped = cls(3, 5, num_layers=2, bidirectional=True, **{option: 0.5})
    dropped.load_state_dict(plain.state_dict())
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 3, 1])
    plain_out, _ = plain(x, lengths=lengths)
    torch.testing.assert_close(dropped.eval()(x, lengths=lengths)[0], plain_out)
    dropped.train()
    first, second = dropped(x, lengths=lengths)[0], dropped(x, lengths=lengths)[0]
    assert not torch.allclose(first, plain_out) and not torch.allclose(first, second)
    assert torch.all(first[1, 3:] == 0) and torch.all(first[2, 1:] == 0)  # lengths still hold


@pytest.mark.parametrize("option", ["recurrent_dropout", "zoneout", "weight_drop"])
def test_regularized_layer_refuses_fused_with_the_reason(option):
    layer = rnn.LSTM(3, 5, impl="fused", **{option: 0.2})
    assert option in layer.fused_unsupported_reason()
    with pytest.raises(ValueError, match=f"impl='fused' is not possible: {option}="):
        layer(torch.randn(2, 4, 3))


def test_weight_drop_is_dropconnect_on_weight_hh_with_gradients_and_no_warnings():
    torch.manual_seed(0)
    layer = rnn.LSTM(3, 5, weight_drop=0.5)
    x = torch.randn(4, 6, 3)
    weight_before = layer.weight_hh_l0.detach().clone()
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = layer(x)
        out.sum().backward()
    torch.manual_seed(1)
    dropped_W = torch.nn.functional.dropout(layer.weight_hh_l0.detach(), 0.5)
    reference = rnn.LSTM(3, 5, impl="loop")
    reference.load_state_dict({**layer.state_dict(), "weight_hh_l0": dropped_W})
    torch.testing.assert_close(out, reference(x)[0])
    assert isinstance(layer.weight_hh_l0, torch.nn.Parameter)
    assert torch.equal(layer.weight_hh_l0, weight_before)  # the parameter itself is untouched
    grad = layer.weight_hh_l0.grad
    assert torch.all(grad[dropped_W == 0] == 0) and grad.abs().sum() > 0  # dropped weights get no gradient


@pytest.mark.parametrize("cls", LAYER_KINDS)
def test_zoneout_zero_is_the_plain_layer(cls):
    torch.manual_seed(0)
    plain = cls(3, 5, num_layers=2, impl="loop")
    zoned = cls(3, 5, num_layers=2, zoneout=0.0)
    zoned.load_state_dict(plain.state_dict())
    x = torch.randn(2, 6, 3)
    torch.testing.assert_close(zoned(x)[0], plain(x)[0])


def test_zoneout_train_keeps_old_units_with_probability_p_and_eval_is_expectation():
    torch.manual_seed(0)
    plain = rnn.LSTM(3, 50, impl="loop")
    zoned = rnn.LSTM(3, 50, zoneout=(0.3, 0.6))
    zoned.load_state_dict(plain.state_dict())
    x = torch.randn(400, 1, 3)
    h0 = (torch.randn(1, 400, 50), torch.randn(1, 400, 50))
    _, (h_new, c_new) = plain(x, h0)
    _, (h_z, c_z) = zoned(x, h0)
    for old, new, zoned_state, p in ((h0[0], h_new, h_z, 0.3), (h0[1], c_new, c_z, 0.6)):
        kept_old = zoned_state == old
        assert torch.all(kept_old | torch.isclose(zoned_state, new, atol=1e-6))  # each unit: old value or new
        assert abs(kept_old.float().mean().item() - p) < 0.02
    zoned.eval()
    _, (h_e, c_e) = zoned(x, h0)
    torch.testing.assert_close(h_e, 0.3 * h0[0] + 0.7 * h_new)
    torch.testing.assert_close(c_e, 0.6 * h0[1] + 0.4 * c_new)


def test_bad_rates_are_rejected():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        rnn.LSTM(3, 5, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="zoneout: expected a float or 2 rate"):
        rnn.LSTM(3, 5, zoneout=(0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="p: expected a probability"):
        rnn.LockedDropout(-0.1)
