"""rnnkit.train: the training engine every task uses. It knows nothing about any task.

A task gives :class:`Trainer` a model, a :class:`TrainConfig`, a ``train_step`` and an
``evaluate``, then calls :meth:`Trainer.fit` with its training batches::

    import json
    import torch
    import torch.nn.functional as F
    from rnnkit.data.batching import TBPTTStream
    from rnnkit.train import StepOutput, TrainConfig, Trainer, load_run, seed_everything

    config = TrainConfig(steps=2000, batch_size=32, lr=3e-3, schedule="cosine", warmup=100, eval_every=200)
    seed_everything(config.seed)                 # before building the model: same init every run
    model = CharLSTM(vocab_size=len(vocab))      # any nn.Module; forward(x, state) -> (logits, state)

    def train_step(model, batch, state):
        # model: the module to call (DDP-wrapped under torchrun); batch: on the trainer's device;
        # state: what the previous chunk returned, detached (None at the start and where a stream restarts)
        logits, state = model(batch.inputs, state)                        # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten())
        return StepOutput(loss, state=state, items=batch.targets.numel())  # or just `loss`, or (loss, state)

    def evaluate(model) -> dict[str, float]:      # rank 0, model.eval(), under torch.no_grad()
        return {"loss": val_loss(model)}          # "loss" (config.monitor) picks `best`, drives patience

    trainer = Trainer(model, config, train_step=train_step, evaluate=evaluate,
                      task="lm", task_config={"model": {"hidden": 256}, "data": {"path": path}})
    trainer.write_file("vocab.json", json.dumps(vocab))   # the task's own files, atomic, rank 0 only
    batches = TBPTTStream(ids, batch_size=config.batch_size, bptt=128)  # batch k = batches(k)
    result = trainer.fit(batches)                 # FitResult: steps, stop_reason, best_metric, run_dir ...

    # later, for predict / eval:
    config_dict, state_dict = load_run(result.run_dir)   # config.json, weights of `best` (else `last`)
    model = CharLSTM(**config_dict["model"]); model.load_state_dict(state_dict)

**Data.** ``fit(data)`` takes a callable ``data(k) -> batch k`` with ``len(data)`` batches per
epoch (:class:`rnnkit.data.batching.ShuffledBatches`, :class:`~rnnkit.data.batching.TBPTTStream`,
or your own): a resumed run asks for exactly the batch it would have seen next. An iterable (a
``DataLoader``) also works: it is re-iterated each epoch (``set_epoch`` is called when its sampler
has one) and replayed up to the saved position on resume, so it must yield the same batches for the
same epoch. ``config.batch_size`` is global: under torchrun each process takes its share (the
batchers above do it for you). A batch whose ``reset`` attribute is True (``StreamChunk`` at an
epoch start) makes the trainer drop the carried state.

**train_step** returns the loss (scalar, mean over the micro-batch), or ``(loss, state)``,
``(loss, state, metrics)`` or a :class:`StepOutput`. The state (a tensor or tuple/list/dict of
tensors) is detached and passed to the next call: that is truncated BPTT. Return no state for
full BPTT over each batch.

**The trainer** exposes ``trainer.model`` (unwrapped), ``trainer.run_dir``, ``trainer.is_main``
(rank 0: the process that writes files), ``trainer.device`` and ``trainer.step``. ``fit`` returns a
:class:`FitResult` whose ``stop_reason`` is ``"completed"``, ``"early stopping"`` or
``"interrupted (SIGINT|SIGTERM)"`` (``last`` saved; continue with ``--resume``); too many
non-finite steps in a row raise :class:`NonFiniteError` (the CLI prints it, exit status 2).

**Command line.** :func:`add_train_args` adds ``--steps/--epochs --batch-size --lr --optimizer
--schedule --warmup --clip-norm --clip-value --accumulate --eval-every --patience --seed --device
--precision --run-dir --resume --quiet --log-format --tensorboard`` to a task's parser;
:func:`config_from_args` builds the :class:`TrainConfig` (with ``--resume RUN_DIR``, the run's saved
options). The run folder (``runs/<task>/<YYYYmmdd-HHMMSS>/``): ``config.json``, ``metrics.jsonl``,
``checkpoints/{last,best}/``, ``plots/*.png``, ``report.md``; see :mod:`rnnkit.train.run`.
"""

from rnnkit.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from rnnkit.train.config import TrainConfig, add_train_args, config_from_args
from rnnkit.train.gradients import TimeStepGradients, layer_grad_norms
from rnnkit.train.logging import read_metrics
from rnnkit.train.run import append_report, load_run, load_weights_into, read_run_config
from rnnkit.train.trainer import FitResult, NonFiniteError, StepOutput, Trainer, seed_everything

__all__ = [
    "FitResult",
    "NonFiniteError",
    "StepOutput",
    "TimeStepGradients",
    "TrainConfig",
    "Trainer",
    "add_train_args",
    "append_report",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "config_from_args",
    "layer_grad_norms",
    "load_run",
    "load_weights_into",
    "read_metrics",
    "read_run_config",
    "seed_everything",
]
