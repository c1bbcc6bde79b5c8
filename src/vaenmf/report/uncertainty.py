"""95% intervals of table cells and of paired differences, from the jobs' per-utterance rows.

The unit of sampling is the *speech utterance* of one seed. A job's ``metrics.json`` holds one row per test
mixture (utterance x noise kind x SNR); a table cell averages several of them, so each utterance is first reduced
to the one number the cell is made of:

* ``y[s, u]`` (the utterance's value in seed ``s``) is the mean of the metric over the cell's *slots*: every
  (job noise, row noise kind, SNR) the cell averages. Table 1: the factory and the babble job at the cell's SNR;
  Table 2: the pooled job's factory and babble mixtures; the "Aver" row: the same at each of the four SNRs. An
  utterance enters only when it has a finite value in every slot (a PESQ failure leaves it out, and is counted).
* For a paired difference A - B, ``y[s, u]`` is the mean over the same slots of ``a - b``, where a and b are the
  two methods' scores of the *same mixture*: paired by (seed, job noise, row noise kind, SNR, utterance).

With ``m_s`` the mean and ``v_s`` the sample variance (ddof 1) of the ``n_s`` values of seed ``s``, and ``S``
seeds, the estimate is the mean of the ``m_s`` (each seed weighs the same, as in the tables) and its squared
standard error is

    SE^2 = B / S + (1 / S) sum_s v_s / n_s,    B = sample variance (ddof 1) of the m_s (0 when S = 1).

The interval is ``estimate +- t(0.975, nu) SE``, ``nu`` by Welch-Satterthwaite: the between-seed term has
``S - 1`` degrees of freedom and each within-seed term ``v_s / (S n_s)`` has ``n_s - 1``.

Why this form: with one seed it is exactly the Student t-interval of a mean over utterances (the paired
t-interval for a difference). With several seeds the estimate varies both with the training seed and with the
utterances tested. ``B / S`` alone is the textbook two-stage estimator when every seed tests its own utterances
(the demo corpus synthesises its speakers from the seed), but it misses the utterance term when the seeds test
the same utterances (TIMIT's core test set); the second term adds that term back. In both designs the sum is
conservative: in expectation it exceeds the true variance by at most the within-seed term ``sigma_w^2 / n``
(it counts the utterance noise once more inside ``B``). No resampling is involved, so the intervals are
deterministic and can be checked by hand. Intervals are pointwise 95%: they are not adjusted for the number of
comparisons a table makes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from vaenmf.report.jobs import Job, snr_label, to_float

__all__ = [
    "LEVEL",
    "Interval",
    "Slots",
    "interval",
    "utterance_id",
    "job_slots",
    "unit_values",
    "paired_slots",
]

#: Coverage of every interval of the report.
LEVEL = 0.95

#: (job noise, row noise kind, SNR label) -> utterance -> value of one metric.
Slots = dict[tuple[str, str, str], dict[str, float]]


@dataclass(frozen=True)
class Interval:
    """A 95% interval of a mean over utterances (and seeds).

    Attributes:
        estimate: The centre (the cell's value, or the mean paired difference).
        lo: Lower end.
        hi: Upper end.
        se: The standard error (see the module docstring).
        df: Welch-Satterthwaite degrees of freedom (inf when ``se`` is 0).
        n_seeds: Seeds combined.
        n_utterances: Utterances used, summed over seeds.
        n_dropped: Utterances left out (a non-finite value in one of the cell's slots), summed over seeds.
    """

    estimate: float
    lo: float
    hi: float
    se: float
    df: float
    n_seeds: int
    n_utterances: int
    n_dropped: int = 0

    @property
    def half_width(self) -> float:
        return self.hi - self.estimate

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0.0 or self.hi < 0.0


def interval(
    groups: Sequence[Sequence[float]], centre: float | None = None, n_dropped: int = 0
) -> tuple[Interval | None, str]:
    """The 95% interval of the mean of per-seed means (module docstring).

    Args:
        groups: One sequence per seed: that seed's per-utterance values ``y[s, u]``.
        centre: The estimate to centre on; None for the mean of the per-seed means. (A table cell is centred on
            its value from the jobs' summaries, which equals that mean unless utterances were left out.)
        n_dropped: Utterances left out, recorded in the result.

    Returns:
        ``(interval, "")``, or ``(None, why)`` when a seed has fewer than two utterances.
    """
    if not groups:
        return None, "no seed with per-utterance values"
    arrays = [np.asarray(g, dtype=np.float64) for g in groups]
    small = [len(a) for a in arrays if len(a) < 2]
    if small:
        return None, f"a seed has {min(small)} utterance(s): at least 2 are needed for an interval"
    n_seeds = len(arrays)
    means = np.array([a.mean() for a in arrays])
    within = [float(a.var(ddof=1)) / (n_seeds * len(a)) for a in arrays]  # v_s / (S n_s)
    between = float(means.var(ddof=1)) / n_seeds if n_seeds > 1 else 0.0
    se2 = between + sum(within)
    estimate = float(means.mean()) if centre is None else float(centre)
    n_utt = sum(len(a) for a in arrays)
    if se2 <= 0.0:
        return Interval(estimate, estimate, estimate, 0.0, math.inf, n_seeds, n_utt, n_dropped), ""
    denominator = sum(w * w / (len(a) - 1) for w, a in zip(within, arrays, strict=True))
    if n_seeds > 1:
        denominator += between * between / (n_seeds - 1)
    df = se2 * se2 / denominator if denominator > 0 else math.inf
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * math.sqrt(se2)
    return Interval(
        estimate, estimate - half, estimate + half, math.sqrt(se2), df, n_seeds, n_utt, n_dropped
    ), ""


def utterance_id(row: Mapping[str, Any]) -> str:
    """The speech utterance a row scores: ``speech_utterance`` when recorded, else ``utterance`` without the
    ``_<noise>_<snr>dB`` suffix that names the mixture (``F07_u00_factory_-5dB`` -> ``F07_u00``)."""
    if row.get("speech_utterance"):
        return str(row["speech_utterance"])
    name = str(row.get("utterance", ""))
    snr = to_float(row.get("snr"))
    if math.isfinite(snr):
        suffix = f"_{row.get('noise')}_{snr:+g}dB"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def job_slots(jobs: Iterable[Job], snrs: Sequence[str], key: str) -> tuple[Slots | None, str]:
    """The per-utterance values of ``key`` of one seed's jobs (one job per noise) at the SNR labels ``snrs``.

    Returns:
        ``(slots, "")``, or ``(None, why)`` when a job has no per-utterance rows, or none at one of ``snrs``.
    """
    slots: Slots = defaultdict(dict)
    for job in jobs:
        rows = job.data.get("rows")
        if not isinstance(rows, list) or not rows:
            return None, f"{job.describe()} has no per-utterance rows"
        seen: set[str] = set()
        for row in rows:
            if not isinstance(row, Mapping):
                continue
            snr = snr_label(row.get("snr"))
            if snr not in snrs:
                continue
            seen.add(snr)
            slot = (str(job.noise), str(row.get("noise", job.noise)), snr)
            slots[slot][utterance_id(row)] = to_float(row.get(key))
        absent = [s for s in snrs if s not in seen]
        if absent:
            return None, f"{job.describe()} has no per-utterance rows at SNR {', '.join(absent)}"
    return dict(slots), ""


def paired_slots(a: Slots, b: Slots) -> Slots:
    """``a - b`` per slot and utterance (NaN where one side lacks the mixture); every slot of either side."""
    out: Slots = {}
    for slot in set(a) | set(b):
        left, right = a.get(slot, {}), b.get(slot, {})
        out[slot] = {u: left.get(u, math.nan) - right.get(u, math.nan) for u in set(left) | set(right)}
    return out


def unit_values(slots: Slots) -> tuple[list[float], int]:
    """Per-utterance values: the mean over the slots of each utterance finite in every slot.

    Returns:
        The values (utterances sorted by name), and how many utterances were left out.
    """
    utterances = sorted({u for values in slots.values() for u in values})
    kept: list[float] = []
    for utt in utterances:
        values = [slots[slot].get(utt, math.nan) for slot in sorted(slots)]
        if all(math.isfinite(v) for v in values):
            kept.append(float(np.mean(values)))
    return kept, len(utterances) - len(kept)
