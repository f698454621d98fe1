"""Runnable demonstrations of why recurrent networks: ``rnnkit experiment vanishing|memory|rnn-vs-ann``.

* :mod:`rnnkit.experiments.vanishing`: gradient norm by lag, and training with and without clipping.
* :mod:`rnnkit.experiments.memory`: the adding problem and copy memory at growing lengths.
* :mod:`rnnkit.experiments.rnn_vs_ann`: an RNN against feed-forward networks (lengths, order, parameters).

Each module has a config dataclass with a ``quick()`` preset and ``run(config)``, which writes a run
folder (``report.md``, ``results.json``, ``config.json``, ``plots/*.png``). The synthetic tasks live in
:mod:`rnnkit.experiments.tasks`.
"""
