"""rnnkit.nn: recurrent building blocks written step by step, weight-compatible with torch.nn.

Cells (one time step): :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`.
The one loop that runs any cell over time: :func:`scan`.
Layers (stacked, bidirectional, dropout, ``lengths=``): :class:`RNN`, :class:`LSTM`, :class:`GRU`.
"""

from rnnkit.nn.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell
from rnnkit.nn.layers import GRU, LSTM, RNN, RecurrentLayer
from rnnkit.nn.scan import reverse_padded, scan

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "RecurrentCell",
    "RecurrentLayer",
    "reverse_padded",
    "scan",
]
