"""Choices measured on held-out data that is not the test split (until the validation split exists).

Three studies, each a grid over one choice, scored on data that no fitted component saw and that is NOT any
split a paper table or figure reports:

``penalty-speech``
    VAE-NMF's nonnegativity weight (``dictionary.system.penalty_weight``, eq. 4-5). Speech and noise
    dictionaries are fitted exactly as the speech task fits them (the configured ``dictionary`` node under the
    job's Trainer); each dictionary's negative fraction and mass at the end of training are recorded, and the
    dictionaries are scored by the SDR of MU-activation enhancement (``method=vae_nmf_mu``: nothing is trained
    on mixtures) on the **training mixtures**: the encoder-training speakers (disjoint from the dictionary and
    the test speakers) mixed with the training part of the noise at the training SNRs. The test mixtures (test
    speakers, test part of the noise) are never built. Caveat: the noise segments come from the part of the
    noise the noise dictionary was fitted on.
``penalty-synergy``
    The same weight in the synergy task: rank-4 synergies fitted on repetitions {1, 3, 4, 6, 7} of each movement,
    VAF on repetitions {8, 9} (training repetitions of the Ninapro protocol held out from the fit), never on
    the test repetitions {2, 5, 10} that Figure 2 reports.
``dnmf-mask``
    DNMF's mask power: reconstruction bases trained with mask power ``p_train`` and applied with ``p_test``.
    The training mixtures are split by speaker into two folds; the bases are trained on one fold's mixtures
    and scored on the other's (both ways), so the scored speakers are unseen by every fitted component.

Results go to ``OUT/<study>[_TAG].json`` (one row per run; a rerun skips the rows already there) and
``OUT/<study>[_TAG].md`` (means over seeds, with their spread). The README's "Choices measured" lists the
commands that produced its tables, e.g.::

    python scripts/heldout_study.py penalty-speech --out outputs/studies/heldout --tag demo --weights 1,1e4 --seeds 0,1
    python scripts/heldout_study.py penalty-synergy --out outputs/studies/heldout --tag db1 --set data=ninapro_db1 \
        --set data.root=../shared/data/ninapro_db1 --set "data.subjects=[1,2,3,4]" --set "data.movements=[1,6]"
    python scripts/heldout_study.py dnmf-mask --out outputs/studies/heldout --tag demo_factory --seeds 0,1

Once the validation split exists (issue 9, item 1), ``scripts/study.py`` on ``eval_split=validation`` supersedes
the speech studies here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def _compose(overrides: Sequence[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base=None):
        return compose(
            config_name="train",
            overrides=[
                "logger=none",
                "callbacks=none",
                "trainer.enable_progress_bar=false",
                "cache_dictionaries=false",
                *overrides,
            ],
        )


def _score(separator: Any, mixtures: Sequence[Any]) -> list[float]:
    import torch

    from vaenmf.data.features import magnitude_phase, resynthesise
    from vaenmf.metrics.bss_eval import SpeechBSSEval

    sdrs = []
    for mixture in mixtures:
        mag, phase = magnitude_phase(mixture.mixture)
        with torch.no_grad():
            speech_mag = separator(mag)
        estimate = resynthesise(speech_mag.to(mag.dtype), phase, mixture.mixture.shape[-1])
        bss = SpeechBSSEval(np.stack([mixture.speech.numpy(), mixture.noise.numpy()]))
        sdrs.append(float(bss(estimate.numpy())["sdr"]))
    return sdrs


def penalty_speech(weight: float, seed: int, extra: Sequence[str], workdir: Path) -> dict[str, Any]:
    from hydra.utils import instantiate

    from vaenmf.tasks.dictionary import train_dictionary_system
    from vaenmf.tasks.runtime import JobContext
    from vaenmf.tasks.separators import build_mu_separator

    cfg = _compose(
        ["method=vae_nmf_mu", f"seed={seed}", f"dictionary.system.penalty_weight={weight}", *extra]
    )
    dm = instantiate(cfg.data)
    dm.setup("fit")
    job = JobContext(cfg, workdir)
    row: dict[str, Any] = {"weight": weight, "seed": seed}
    W = {}
    for stage, X in (("speech", dm.speech_dictionary_frames()), ("noise", dm.noise_dictionary_frames())):
        start = time.perf_counter()
        system = train_dictionary_system(job, f"{stage}_dict", X, cfg.dictionary, seed)
        W[stage] = system.dictionary()
        fraction, mass = system.model.negative_weight_stats()
        row[f"{stage}_neg_fraction"], row[f"{stage}_neg_mass"] = float(fraction), float(mass)
        row[f"{stage}_seconds"] = time.perf_counter() - start
    separator = build_mu_separator(cfg.activations, W["speech"], W["noise"])
    mixtures = dm.training_mixtures()
    sdrs = _score(separator, mixtures)
    row["sdr"] = float(np.mean(sdrs))
    row["sdr_input"] = float(np.mean(_score(lambda mag: mag, mixtures)))
    row["sdr_per_mixture"] = sdrs
    row["n_mixtures"] = len(mixtures)
    return row


def penalty_synergy(weight: float, seed: int, extra: Sequence[str], workdir: Path) -> dict[str, Any]:
    from hydra.utils import instantiate

    from vaenmf.tasks.runtime import JobContext
    from vaenmf.tasks.synergy import _fit_one, _movement_data, _movement_result

    cfg = _compose(
        [
            "task=synergy",
            "method=vae_nmf",
            f"seed={seed}",
            f"dictionary.system.penalty_weight={weight}",
            "data.train_repetitions=[1,3,4,6,7]",
            "data.test_repetitions=[8,9]",
            *extra,
        ]
    )
    dm = instantiate(cfg.data)
    dm.setup()
    job = JobContext(cfg, workdir)
    values: dict[str, list[float]] = defaultdict(list)
    for subject in dm.subjects():
        for movement in dm.movements(subject):
            # The task's own per-movement fit; its "test" is repetitions 8 and 9 here, held out from the fit.
            data = _movement_data(cfg, dm, subject, movement)
            W, stats, splits = _fit_one(cfg, job, f"s{subject}_m{movement}", data)
            result, _ = _movement_result(cfg, dm, subject, movement, data, W, stats, splits)
            for key, entry in result["vaf"].items():
                values[key.replace("test/", "val/")].append(entry["overall"])
            values["synergy_recovery"].append(result.get("synergy_recovery", float("nan")))
            values["neg_fraction"].append(stats["neg_fraction"])
            values["neg_mass"].append(stats["neg_mass"])
    row: dict[str, Any] = {"weight": weight, "seed": seed, "n_movements": len(values["val/fixed_w"])}
    row.update({key: float(np.mean(v)) for key, v in values.items()})
    row["neg_mass_max"] = float(np.max(values["neg_mass"]))
    return row


class _Mixtures:
    """A stand-in data module whose training mixtures are the given ones (one fold)."""

    def __init__(self, mixtures: list[Any]) -> None:
        self.mixtures = mixtures

    def training_mixtures(self) -> list[Any]:
        return self.mixtures


def dnmf_mask(
    p_train: float, p_test: float, seed: int, extra: Sequence[str], workdir: Path
) -> dict[str, Any]:
    from hydra.utils import instantiate

    from vaenmf.tasks.dictionary import train_dictionary_system
    from vaenmf.tasks.dnmf import train_reconstruction_bases
    from vaenmf.tasks.runtime import JobContext
    from vaenmf.tasks.separators import MUSeparator

    cfg = _compose(["method=dnmf", f"seed={seed}", f"activations.mask_power={p_train}", *extra])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    job = JobContext(cfg, workdir)
    Ws = train_dictionary_system(job, "speech_dict", dm.speech_dictionary_frames(), cfg.dictionary, seed)
    Wn = train_dictionary_system(job, "noise_dict", dm.noise_dictionary_frames(), cfg.dictionary, seed)
    W_speech, W_noise = Ws.dictionary(), Wn.dictionary()
    mixtures = dm.training_mixtures()
    speakers = sorted({m.speaker for m in mixtures})
    folds = [speakers[0::2], speakers[1::2]]
    act = cfg.activations
    sdrs: dict[str, list[float]] = defaultdict(list)
    for k, fold in enumerate(folds):
        train = [m for m in mixtures if m.speaker not in fold]
        held = [m for m in mixtures if m.speaker in fold]

        bases = train_reconstruction_bases(
            cfg.reconstruction,
            JobContext(cfg, workdir / f"fold{k}"),
            W_speech,
            W_noise,
            _Mixtures(train),
            seed,
        )
        for name, mask_bases, power in (
            ("dnmf", bases, p_test),
            ("nmf", None, p_test),
        ):
            separator = MUSeparator(
                W_speech,
                W_noise,
                float(act.beta),
                int(act.mu_iterations),
                float(act.l1),
                float(power),
                mask_bases,
            )
            sdrs[name] += _score(separator, held)
    return {
        "p_train": p_train,
        "p_test": p_test,
        "seed": seed,
        "sdr": float(np.mean(sdrs["dnmf"])),
        "sdr_nmf": float(np.mean(sdrs["nmf"])),
        "n_mixtures": len(sdrs["dnmf"]),
        "folds": [list(f) for f in folds],
    }


def _table(rows: list[dict[str, Any]], keys: Sequence[str], metrics: Sequence[str]) -> str:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    lines = [
        "| " + " | ".join([*keys, "seeds", *metrics]) + " |",
        "|" + "---|" * (len(keys) + 1 + len(metrics)),
    ]
    for group in sorted(groups):
        runs = groups[group]
        cells = [str(v) for v in group] + [",".join(str(r["seed"]) for r in runs)]
        for metric in metrics:
            values = np.array([r[metric] for r in runs], dtype=float)
            spread = f" ± {values.std(ddof=1):.3g}" if len(values) > 1 else ""
            cells.append(f"{values.mean():.4g}{spread}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study", choices=("penalty-speech", "penalty-synergy", "dnmf-mask"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tag", default="", help="suffix of the output files (e.g. the corpus)")
    parser.add_argument("--weights", default="0,1,1e2,1e3,1e4,1e5", help="penalty weights (penalty studies)")
    parser.add_argument("--powers", default="1:1,2:2,1:2", help="p_train:p_test pairs (dnmf-mask)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Hydra override")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.study.replace("-", "_") + (f"_{args.tag}" if args.tag else "")
    path = args.out / f"{name}.json"
    rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.study == "dnmf-mask":
        grid = [tuple(float(p) for p in pair.split(":")) for pair in args.powers.split(",")]
        keys, metrics = ["p_train", "p_test"], ["sdr", "sdr_nmf"]
    else:
        grid = [(float(w),) for w in args.weights.split(",")]
        keys = ["weight"]
        metrics = (
            ["speech_neg_mass", "noise_neg_mass", "speech_neg_fraction", "noise_neg_fraction", "sdr"]
            if args.study == "penalty-speech"
            else [
                "neg_mass",
                "neg_mass_max",
                "neg_fraction",
                "val/fixed_w",
                "val/posterior_mean",
                "train/fixed_w",
                "synergy_recovery",
            ]
        )
    done = {(tuple(r[k] for k in keys), r["seed"]) for r in rows}
    for point in grid:
        for seed in seeds:
            if (point, seed) in done:
                continue
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                if args.study == "penalty-speech":
                    row = penalty_speech(point[0], seed, args.set, Path(tmp))
                elif args.study == "penalty-synergy":
                    row = penalty_synergy(point[0], seed, args.set, Path(tmp))
                else:
                    row = dnmf_mask(point[0], point[1], seed, args.set, Path(tmp))
            row["seconds"] = time.perf_counter() - start
            row["overrides"] = list(args.set)
            rows.append(row)
            path.write_text(json.dumps(rows, indent=1))
            print(json.dumps(row), flush=True)
    (args.out / f"{name}.md").write_text(
        f"Held-out study {args.study} {' '.join(args.set)}\n\n" + _table(rows, keys, metrics)
    )
    print((args.out / f"{name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
