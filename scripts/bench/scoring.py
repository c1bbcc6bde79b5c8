"""Benchmark the speech task's enhance-and-score loop: where a test mixture's time goes, and the scoring pool.

Writes ``outputs/bench/scoring.json`` with:

* ``split``: per test mixture, the CPU seconds (``process_time``, one torch and BLAS thread, as the task runs)
  of enhancing it (STFT, the separator, inverse STFT) and of each score of the estimate and of the input:
  BSS Eval's reference side (Gram matrices and their LU factors, shared by the two), BSS Eval of the estimate,
  of the input, PESQ (narrow and wide band) of each, STOI of each. Means over ``--utterances`` mixtures per SNR,
  and their sum beside the measured cost of one :func:`~vaenmf.metrics.score_utterance` call.
* ``pool``: wall time of the whole loop (:func:`vaenmf.tasks.speech.enhance_and_score`) with 0 (in-process),
  1 and 2 scoring workers (``--workers``), interleaved round robin, and whether every pool run gave exactly the
  rows of the in-process run (it fails otherwise).

The separator is the NMF column (rank-40 KL dictionaries of 200 multiplicative updates fitted on the data
module's dictionary frames, 100 MU activations, the Wiener mask): the cheapest separator, so the split shows the
scoring's share at its largest.

Data: the embedded demo (default) or real TIMIT + NOISEX-92 excerpts::

    python scripts/bench/scoring.py --out outputs/bench/scoring_timit.json --shared \\
        --timit-root ../shared/data/timit_sample --noisex-root ../shared/data/noisex92/jonboley_22k05_20s
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    add_common_arguments,
    environment,
    finish_environment,
    interleaved_best,
    write_report,
)


def _datamodule(args: argparse.Namespace) -> Any:
    """The speech task's data module as ``conf/data/speech_{demo,timit}.yaml`` configures it."""
    from omegaconf import OmegaConf

    from vaenmf.data.speech import SpeechDataModule

    name = "speech_timit" if args.timit_root else "speech_demo"
    data = OmegaConf.load(REPO_ROOT / "conf" / "data" / f"{name}.yaml")
    data.merge_with(
        {"noise": args.noise, "test_noise": None, "seed": 0, "n_test_utterances": args.utterances}
    )
    if args.timit_root:
        data.merge_with({"data_root": None, "timit_root": args.timit_root, "noisex_root": args.noisex_root})
    # Resolved after the overrides: the file's interpolations (${noise}, ${.n_test_utterances}) take their values.
    settings = OmegaConf.to_container(data, resolve=True)
    assert isinstance(settings, dict)
    settings.pop("_target_", None)
    datamodule = SpeechDataModule(**settings)
    datamodule.evaluate_on("test")  # scored as the tables are; a short validation part is no concern
    datamodule.setup("fit")
    return datamodule


def _separator(datamodule: Any, iterations: int = 200) -> Any:
    import vaenmf
    from vaenmf.tasks.separators import MUSeparator

    W_speech = vaenmf.fit_dictionary(
        datamodule.speech_dictionary_frames(), method="nmf", rank=40, beta=1, max_iter=iterations
    )
    W_noise = vaenmf.fit_dictionary(
        datamodule.noise_dictionary_frames(), method="nmf", rank=40, beta=1, max_iter=iterations
    )
    return MUSeparator(torch.as_tensor(W_speech), torch.as_tensor(W_noise), beta=1.0, n_iter=100)


def _cpu(fn: Any, *args: Any) -> tuple[float, Any]:
    begin = time.process_time()
    result = fn(*args)
    return time.process_time() - begin, result


def _enhance(separator: Any, waveform: torch.Tensor) -> torch.Tensor:
    from vaenmf.data.features import magnitude_phase, resynthesise

    mag, phase = magnitude_phase(waveform)
    with torch.no_grad():
        speech_mag = separator(mag)
    return resynthesise(speech_mag.to(mag.dtype), phase, waveform.shape[-1])


def split(separator: Any, test_sets: dict[float, list[Any]]) -> dict[str, Any]:
    """CPU seconds per mixture of enhancing it and of each part of its scoring (one thread)."""
    from vaenmf.metrics.bss_eval import SpeechBSSEval
    from vaenmf.metrics.speech import _as_signal, pesq_scores, score_utterance, stoi_score
    from vaenmf.tasks.runtime import single_threaded

    parts: dict[str, list[float]] = {}
    seconds: list[float] = []
    with single_threaded():
        for mixtures in test_sets.values():
            for mix in mixtures:
                row: dict[str, float] = {}
                row["enhance"], estimate = _cpu(_enhance, separator, mix.mixture)
                s, n = _as_signal(mix.speech, "s"), _as_signal(mix.noise, "n")
                est, y = _as_signal(estimate, "est"), _as_signal(mix.mixture, "y")
                row["bss_eval_references"], bss = _cpu(SpeechBSSEval, np.stack([s, n]))
                row["bss_eval_estimate"], _ = _cpu(bss, est)
                row["bss_eval_input"], _ = _cpu(bss, y)
                row["pesq_estimate"], _ = _cpu(pesq_scores, s, est, mix.sr)
                row["pesq_input"], _ = _cpu(pesq_scores, s, y, mix.sr)
                row["stoi_estimate"], _ = _cpu(stoi_score, s, est, mix.sr)
                row["stoi_input"], _ = _cpu(stoi_score, s, y, mix.sr)
                row["score_utterance"], _ = _cpu(
                    score_utterance, mix.speech, mix.noise, estimate, mix.mixture, mix.sr
                )
                for key, value in row.items():
                    parts.setdefault(key, []).append(value)
                seconds.append(mix.mixture.shape[-1] / mix.sr)
    mean = {key: statistics.fmean(values) for key, values in parts.items()}
    scored = sum(v for k, v in mean.items() if k not in ("enhance", "score_utterance"))
    per_mixture = mean["enhance"] + mean["score_utterance"]
    return {
        "mixtures": len(seconds),
        "mean_mixture_seconds": statistics.fmean(seconds),
        "cpu_s_per_mixture": mean,
        "sum_of_score_parts_cpu_s": scored,
        "enhance_plus_score_cpu_s": per_mixture,
        "share_of_mixture": {
            key: value / per_mixture for key, value in mean.items() if key != "score_utterance"
        },
        "estimate_vs_input_cpu_s": {
            "estimate": mean["bss_eval_estimate"] + mean["pesq_estimate"] + mean["stoi_estimate"],
            "input": mean["bss_eval_input"] + mean["pesq_input"] + mean["stoi_input"],
            "shared_bss_eval_references": mean["bss_eval_references"],
        },
    }


def pool(
    separator: Any, test_sets: dict[float, list[Any]], workers: list[int], repeats: int
) -> dict[str, Any]:
    """Wall and CPU time of the whole loop with each number of scoring workers; rows compared exactly."""
    from vaenmf.tasks.speech import enhance_and_score

    results = interleaved_best(
        {
            f"workers_{n}": (lambda n=n: enhance_and_score(separator, test_sets, n))
            for n in sorted(set([0, *workers]))
        },
        repeats=repeats,
        warmups={f"workers_{n}": (lambda: None) for n in sorted(set([0, *workers]))},
    )
    reference = results["workers_0"][1]
    report: dict[str, Any] = {}
    for name, (timing, rows) in results.items():
        same = rows == reference  # NaN PESQ never occurs on these mixtures; a NaN would make this False
        if not same:
            raise SystemExit(f"{name}: rows differ from the in-process run")
        report[name] = {**timing, "rows_identical_to_in_process": same}
    base = report["workers_0"]["seconds"]
    for entry in report.values():
        entry["speedup_vs_in_process"] = base / entry["seconds"]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, "outputs/bench/scoring.json")
    parser.add_argument("--utterances", type=int, default=8, help="test utterances per SNR")
    parser.add_argument("--noise", default="factory")
    parser.add_argument("--timit-root", default=None, help="real TIMIT (default: the embedded demo)")
    parser.add_argument("--noisex-root", default=None)
    parser.add_argument("--workers", default="1,2", help="scoring workers to time besides 0 (in-process)")
    parser.add_argument("--dictionary-iterations", type=int, default=200, help="NMF updates per dictionary")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    env = environment(1, shared=args.shared, note=args.note, libraries=("pesq", "pystoi", "scipy"))
    datamodule = _datamodule(args)
    separator = _separator(datamodule, args.dictionary_iterations)
    test_sets = datamodule.test_mixtures()
    report: dict[str, Any] = {
        "corpus": "timit" if args.timit_root else "demo",
        "noise": args.noise,
        "utterances_per_snr": args.utterances,
        "separator": f"nmf (rank 40 + 40, KL, {args.dictionary_iterations} updates; 100 MU activations, mask "
        "power 2)",
        "split": split(separator, test_sets),
    }
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    report["pool"] = pool(separator, test_sets, workers, args.repeats)
    report["environment"] = finish_environment(env)
    write_report(args.out, report)
    if not args.quiet:
        sp = report["split"]
        print(f"per mixture ({sp['mixtures']} mixtures of {sp['mean_mixture_seconds']:.2f} s), CPU seconds:")
        for key, value in sp["cpu_s_per_mixture"].items():
            print(f"  {key:22s} {value:.4f}")
        for name, entry in report["pool"].items():
            print(f"{name}: {entry['seconds']:.2f} s wall, x{entry['speedup_vs_in_process']:.2f}")
        print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
