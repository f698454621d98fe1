"""Multi30k German→English with `rnnkit translate`: BLEU of the attentional seq2seq and of baselines.

Trains on ``multi30k/train.{de,en}`` (29,000 pairs) with ``rnnkit.tasks.translate.train`` for
``--epochs`` and reports, on ``multi30k/val.{de,en}`` (1,014 pairs; the test split is held back),
sacrebleu's corpus BLEU and chrF (13a tokenization, lower-cased: the run lower-cases its text) of
the best checkpoint (by validation loss) with greedy search and with beam search, and its
validation perplexity. The checkpoint is picked on the split it is scored on, as the loss is the
only thing it is picked by; the greedy BLEU of every evaluation is in the run's metrics.jsonl.

``--attention none`` trains the ablation: the same model whose decoder gets one fixed context,
the mean of the encoder's outputs, at every step (the seq2seq of Cho et al. 2014 with a mean
instead of a final state), to show what attention adds.

Baseline, scored the same way on the same references: ``copy_source``, the German sentence
itself as the "translation": names, numbers and punctuation shared
by both languages earn it some n-grams, which is what BLEU gives for nothing.

    python -m benchmarks.bench_translate --epochs 8                 # writes results/translate_multi30k.json
    python -m benchmarks.bench_translate --epochs 10 --attention none --name translate_multi30k_no_attention
    python -m benchmarks.bench_translate --epochs 1 --max-train-pairs 5000 --name translate_quick
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.results_io import result_name, write_result
from benchmarks.shared_data import add_data_option, require
from rnnkit.data.parallel import read_parallel
from rnnkit.tasks import translate
from rnnkit.train import read_metrics


def base_config(args: argparse.Namespace, run_dir: str, multi30k: Path) -> translate.Config:
    data = translate.DataConfig(
        train_source=str(multi30k / "train.de"),
        train_target=str(multi30k / "train.en"),
        val_source=str(multi30k / "val.de"),
        val_target=str(multi30k / "val.en"),
        max_train_pairs=args.max_train_pairs,
    )
    model = translate.ModelConfig(
        cell=args.cell, embed_dim=args.embed_dim, hidden_size=args.hidden_size, attention=args.attention
    )
    train = replace(
        translate.default_train_config(),
        epochs=args.epochs,
        eval_every=args.eval_every,
        run_dir=run_dir,
        quiet=True,
        seed=args.seed,
    )
    return translate.Config(data=data, model=model, decode=translate.DecodeConfig(beam_size=args.beam), train=train)


def scores_of(run_dir: Path, beam: int, multi30k: Path) -> dict[str, float]:
    translator = translate.Translator.load(run_dir)
    val = read_parallel(multi30k / "val.de", multi30k / "val.en")
    out: dict[str, float] = {}
    for size in sorted({1, beam}):
        start = time.perf_counter()
        report = translator.evaluate(val, beam_size=size)
        seconds = time.perf_counter() - start
        name = "greedy" if size == 1 else f"beam{size}"
        out |= {f"{name}_bleu": report["bleu"], f"{name}_chrf": report["chrf"], f"{name}_seconds": seconds}
        out["val_loss_nats"], out["val_perplexity"] = report["loss"], report["perplexity"]
    return out


def copy_source_scores(multi30k: Path) -> dict[str, float]:
    val = read_parallel(multi30k / "val.de", multi30k / "val.en")
    scores = translate.corpus_scores(val.sources, val.targets, lowercase=True)
    return {"copy_source_bleu": scores["bleu"], "copy_source_chrf": scores["chrf"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--max-train-pairs", type=int, default=None)
    parser.add_argument("--cell", default="gru", choices=translate.CELLS)
    parser.add_argument("--attention", default="general", choices=translate.ATTENTION_CHOICES)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--name", type=result_name, default="translate_multi30k")
    add_data_option(parser)
    args = parser.parse_args()
    multi30k = require(args.data, "multi30k/train.de", "Multi30k")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        result = translate.train(base_config(args, str(run_dir), multi30k))
        prefix = "no_attention" if args.attention == "none" else "attention"
        metrics = {f"{prefix}_{k}": v for k, v in scores_of(run_dir, args.beam, multi30k).items()}
        evals = [row for row in read_metrics(run_dir) if row.get("kind") == "eval"]
        metrics["train_wall_seconds"] = result.wall_seconds
        metrics["train_steps"] = result.steps
        metrics["best_step"] = result.best_step
    reference = copy_source_scores(multi30k)
    curve = [{"step": r["step"], "loss": r.get("val_loss"), "greedy_bleu": r.get("val_greedy_bleu")} for r in evals]
    print(metrics, reference)
    write_result(
        args.name,
        dataset="Multi30k de→en (../shared/data/multi30k)",
        split="train (29,000 pairs) / val (1,014 pairs)",
        metrics=metrics,
        reference=reference,
        wall_seconds=time.perf_counter() - start,
        notes=(
            f"{args.cell.upper()} encoder-decoder, {args.attention} attention, embed {args.embed_dim}, "
            f"hidden {args.hidden_size} per direction; word vocabularies (min_freq 2, lower-cased); "
            f"best checkpoint by val loss; sacrebleu 13a, lowercase; torch threads {torch.get_num_threads()}"
        ),
        extra={"eval_curve": curve},
    )


if __name__ == "__main__":
    main()
