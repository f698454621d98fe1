"""Spoken digit strings (FSDD) with `rnnkit speech`: WER and CER of a bidirectional GRU trained by
CTC, against the frame-wise MLP baseline trained the same way.

Utterances are 1-4 random FSDD recordings strung together with 100 ms of silence
(:func:`rnnkit.data.fsdd.make_digit_utterances`), from disjoint recordings by the dataset's
index convention: training from indices 5-44, validation (checkpoint selection) from 45-49,
and the reported test set from indices 0-4 (FSDD's own test split; every one of the 6 speakers
is in all three, no recording in two). WER and CER by jiwer, in percent, of three decodings of
each model: greedy CTC best path, prefix beam search (beam 8), and beam 8 with a 4-gram character
LM (interpolated Kneser-Ney) built from the training transcripts, its weight and insertion bonus
chosen on the validation utterances from a small grid (``LM_GRID``), never on the test set.

    python -m benchmarks.bench_speech                       # writes benchmarks/results/speech_fsdd.json
    python -m benchmarks.bench_speech --epochs 3 --cells gru --name speech_quick
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
from rnnkit.data.fsdd import TEST_INDICES, make_digit_utterances
from rnnkit.tasks import speech

BEAM = 8
LM_ORDER = 4
LM_GRID = [(weight, bonus) for weight in (0.25, 0.5, 1.0) for bonus in (0.0, 1.0)]  # (lm_weight, insertion_bonus)


def decoded_rates(run_dir: Path, val: Path, test: Path, lm_path: Path) -> dict[str, float]:
    """Test WER/CER with beam search, and with beam search plus the LM at the grid point that
    gives the lowest validation WER (then CER); that point's weights too."""
    recognizer = speech.Recognizer.load(run_dir)
    val_set, test_set = (speech.read_utterances(m, recognizer.data) for m in (val, test))
    beam = recognizer.evaluate(test_set, speech.DecodeConfig(beam=BEAM))
    tried = []
    for weight, bonus in LM_GRID:
        decode = speech.DecodeConfig(beam=BEAM, lm=str(lm_path), lm_weight=weight, insertion_bonus=bonus)
        report = recognizer.evaluate(val_set, decode)
        tried.append((report["wer"], report["cer"], weight, bonus, decode))
    val_wer, _, weight, bonus, decode = min(tried, key=lambda t: t[:2])
    fused = recognizer.evaluate(test_set, decode)
    return {
        f"test_wer_percent_beam{BEAM}": beam["wer"],
        f"test_cer_percent_beam{BEAM}": beam["cer"],
        f"test_wer_percent_beam{BEAM}_lm": fused["wer"],
        f"test_cer_percent_beam{BEAM}_lm": fused["cer"],
        f"val_wer_percent_beam{BEAM}_lm": val_wer,
        "lm_weight": weight,
        "lm_insertion_bonus": bonus,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cells", nargs="+", default=["gru", "mlp"], choices=speech.CELLS)
    parser.add_argument("--train-utterances", type=int, default=3000)
    parser.add_argument("--test-utterances", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", type=result_name, default="speech_fsdd")
    add_data_option(parser)
    args = parser.parse_args()
    recordings = require(args.data, "fsdd/recordings", "The Free Spoken Digit Dataset")
    start = time.perf_counter()
    metrics: dict[str, float] = {}
    reference: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train = make_digit_utterances(recordings, root / "train", args.train_utterances, indices=range(5, 45), seed=1)
        val = make_digit_utterances(recordings, root / "val", 300, indices=range(45, 50), seed=2)
        test = make_digit_utterances(recordings, root / "test", args.test_utterances, indices=TEST_INDICES, seed=3)
        lm_path = root / "lm.json"
        speech.build_lm(manifest=train, order=LM_ORDER).save(lm_path)
        for cell in args.cells:
            config = speech.Config(
                data=speech.DataConfig(train=str(train), val=str(val)),
                model=speech.ModelConfig(cell=cell),
                train=replace(
                    speech.default_train_config(), epochs=args.epochs, quiet=True, seed=args.seed,
                    run_dir=str(root / f"run_{cell}"),
                ),
            )  # fmt: skip
            result = speech.train(config)
            report = speech.evaluate_file(result.run_dir, test, root / f"eval_{cell}")
            into = metrics if cell != "mlp" else reference
            into |= {
                f"{cell}_test_wer_percent": report["wer"],
                f"{cell}_test_cer_percent": report["cer"],
                f"{cell}_val_wer_percent_last_eval": result.last_eval.get("wer"),
                f"{cell}_train_wall_seconds": result.wall_seconds,
                f"{cell}_best_step": result.best_step,
            }
            decode_start = time.perf_counter()
            into |= {f"{cell}_{k}": v for k, v in decoded_rates(result.run_dir, val, test, lm_path).items()}
            into[f"{cell}_beam_and_lm_decoding_wall_seconds"] = time.perf_counter() - decode_start
            print(cell, metrics, reference, flush=True)
    write_result(
        args.name,
        dataset="Free Spoken Digit Dataset v1.0.9 (../shared/data/fsdd), digit strings of 1-4 recordings",
        split=(
            f"train: {args.train_utterances} utterances from recording indices 5-44; val: 300 from 45-49; "
            f"test: {args.test_utterances} from 0-4"
        ),
        metrics=metrics,
        reference=reference,
        wall_seconds=time.perf_counter() - start,
        notes=(
            f"40 log-mel bands (25 ms / 10 ms), two frames stacked; 2 layers x 128 units per direction, "
            f"dropout 0.2, {args.epochs} epochs of batch 32, AdamW lr 2e-3; best checkpoint by val CTC loss; "
            f"test WER/CER greedy, beam {BEAM}, and beam {BEAM} with a {LM_ORDER}-gram character LM of the "
            f"training transcripts (weight, insertion bonus picked on val from {LM_GRID}); "
            f"torch threads {torch.get_num_threads()}"
        ),
    )


if __name__ == "__main__":
    main()
