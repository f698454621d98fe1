"""rnnkit: recurrent neural networks for sequence data, end to end, on PyTorch."""

__version__ = "0.1.0"
