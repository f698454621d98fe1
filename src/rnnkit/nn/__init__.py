"""rnnkit.nn: recurrent building blocks written step by step, weight-compatible with torch.nn.

Cells (one time step): :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`,
:class:`LayerNormLSTMCell`, :class:`LayerNormGRUCell`, :class:`IndRNNCell`, :class:`MinGRUCell`,
:class:`MinLSTMCell`.
The one loop that runs any cell over time: :func:`scan` (and, for minGRU/minLSTM only, the
parallel :func:`parallel_scan`).
Layers (stacked, bidirectional, dropout, ``lengths=``, and the ``recurrent_dropout=``,
``zoneout=``, ``weight_drop=`` options): :class:`RNN`, :class:`LSTM`, :class:`GRU`,
:class:`LayerNormLSTM`, :class:`LayerNormGRU`, :class:`IndRNN`, :class:`MinGRU`, :class:`MinLSTM`.
Dropout around layers: :class:`LockedDropout`, :class:`EmbeddingDropout`.
Attention of a decoder over encoder outputs: :class:`DotAttention`, :class:`GeneralAttention`,
:class:`AdditiveAttention` (:mod:`rnnkit.nn.attention`).
"""

from rnnkit.nn.attention import AdditiveAttention, DotAttention, GeneralAttention
from rnnkit.nn.cells import (
    GRUCell,
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    RecurrentCell,
    RNNCell,
)
from rnnkit.nn.dropout import EmbeddingDropout, LockedDropout
from rnnkit.nn.layers import GRU, LSTM, RNN, IndRNN, LayerNormGRU, LayerNormLSTM, RecurrentLayer
from rnnkit.nn.minrnn import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell, parallel_scan
from rnnkit.nn.scan import reverse_padded, scan

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "AdditiveAttention",
    "DotAttention",
    "EmbeddingDropout",
    "GRUCell",
    "GeneralAttention",
    "IndRNN",
    "IndRNNCell",
    "LSTMCell",
    "LayerNormGRU",
    "LayerNormGRUCell",
    "LayerNormLSTM",
    "LayerNormLSTMCell",
    "LockedDropout",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "RNNCell",
    "RecurrentCell",
    "RecurrentLayer",
    "parallel_scan",
    "reverse_padded",
    "scan",
]
