"""Speech-enhancement metrics: BSS Eval SDR/SIR/SAR, PESQ and STOI of one utterance.

Every metric is a plain function that takes numpy arrays (torch tensors are accepted and moved to the CPU) and
returns Python floats. Nothing here knows about Lightning, Hydra or files.

The metrics follow the paper's protocol (Section 4 of ``DESIGN.md``):

- SDR, SIR, SAR: BSS Eval v3 (``mir_eval.separation.bss_eval_sources``) with references ``[speech, noise]`` and
  estimates ``[speech_hat, mixture - speech_hat]``; the speech row is reported.
- PESQ: ITU-T P.862 through the ``pesq`` package. The narrow-band score is reported as the *raw* P.862 MOS
  (the paper's 1.9-3.2 scale), the wide-band score as P.862.2 MOS-LQO. See :func:`pesq_scores`.
- STOI (beyond the paper) through ``pystoi``.

References:
    Vincent, Gribonval, Fevotte. "Performance measurement in blind audio source separation". IEEE TASLP 2006.
    ITU-T P.862 (2001), P.862.1 (2003), P.862.2 (2007).
    Taal, Hendriks, Heusdens, Jensen. "An algorithm for intelligibility prediction of time-frequency weighted
    noisy speech". IEEE TASLP 2011.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from vaenmf.errors import DataError

__all__ = [
    "MetricWarning",
    "bss_eval_speech",
    "pesq_scores",
    "pesq_raw_to_mos_lqo",
    "pesq_mos_lqo_to_raw",
    "stoi_score",
    "score_utterance",
    "utterance_scorer",
    "SCORE_KEYS",
]

#: Keys of :func:`score_utterance`, for the estimate; the same keys with ``_input`` appended score the mixture.
SCORE_KEYS: tuple[str, ...] = ("sdr", "sir", "sar", "pesq_nb", "pesq_wb", "stoi")

# ITU-T P.862.1 mapping from raw narrow-band P.862 MOS to MOS-LQO (the constants the `pesq` C code uses).
_P862_1_SLOPE = 1.4945
_P862_1_OFFSET = 4.6607
_LQO_MIN = 0.999
_LQO_SPAN = 4.0


class MetricWarning(UserWarning):
    """A metric could not be computed for one utterance and was returned as NaN."""


def _as_signal(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a finite 1-D float64 numpy array.

    Accepts numpy arrays, torch tensors (any device, with or without grad) and sequences. Singleton dimensions
    are squeezed, so ``(1, T)`` and ``(T, 1)`` are fine.
    """
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim > 1:
        arr = np.squeeze(arr)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D waveform (samples,), got shape {np.shape(x)}")
    if arr.size == 0:
        raise DataError(f"{name} is empty; expected a nonempty waveform")
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.sum(~np.isfinite(arr)))
        raise DataError(f"{name} contains {n_bad} NaN or infinite samples; expected a finite waveform")
    return arr


def _same_length(**signals: np.ndarray) -> None:
    lengths = {name: s.shape[0] for name, s in signals.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise DataError(f"waveforms must have the same number of samples, got {desc}")


def bss_eval_speech(
    reference_speech: Any, reference_noise: Any, estimated_speech: Any, mixture: Any
) -> dict[str, float]:
    """BSS Eval v3 SDR, SIR and SAR of an enhanced speech signal.

    Calls ``mir_eval.separation.bss_eval_sources`` with references ``[s, n]`` and estimates
    ``[s_hat, mixture - s_hat]`` and ``compute_permutation=False`` (so that row 0 is always the speech row; the
    default permutation search could swap the rows of a poor estimate), and returns row 0. With
    ``compute_permutation=False`` mir_eval scores each estimate on its own, so row 0 does not depend on the noise
    estimate; when the noise estimate ``mixture - s_hat`` is exactly zero (the unprocessed mixture scored as the
    estimate) mir_eval would reject it as silent, so the reference noise is passed in its place, which leaves
    row 0 unchanged.

    Args:
        reference_speech: Clean speech ``s``.
        reference_noise: The (scaled) noise ``n`` that was added, so that ``mixture = s + n``.
        estimated_speech: Enhanced speech ``s_hat``.
        mixture: Noisy input ``y``.

    Returns:
        ``{"sdr": ..., "sir": ..., "sar": ...}`` in dB for the speech row.

    Raises:
        DataError: If the signals differ in length, contain NaN/inf, or the speech reference, noise reference or
            speech estimate is all zeros (BSS Eval is undefined for silent sources).

    Shape:
        - all inputs: ``(samples,)`` (singleton dimensions are squeezed).

    References:
        Vincent, Gribonval, Fevotte. "Performance measurement in blind audio source separation". IEEE TASLP 2006.
    """
    import mir_eval

    s = _as_signal(reference_speech, "reference_speech")
    n = _as_signal(reference_noise, "reference_noise")
    s_hat = _as_signal(estimated_speech, "estimated_speech")
    y = _as_signal(mixture, "mixture")
    _same_length(reference_speech=s, reference_noise=n, estimated_speech=s_hat, mixture=y)
    for name, sig in (("reference_speech", s), ("reference_noise", n)):
        if not np.any(sig):
            raise DataError(f"{name} is all zeros; BSS Eval needs non-silent reference sources")
    if not np.any(s_hat):
        raise DataError(
            "estimated_speech is all zeros (the enhancement removed everything); BSS Eval SDR/SIR/SAR are "
            "undefined for a silent estimate"
        )
    n_hat = y - s_hat
    if not np.any(n_hat):
        n_hat = n  # row 0 does not depend on estimate 1 when compute_permutation=False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*bss_eval_sources.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*bss_eval_sources.*", category=DeprecationWarning)
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(
            np.stack([s, n]), np.stack([s_hat, n_hat]), compute_permutation=False
        )
    return {"sdr": float(sdr[0]), "sir": float(sir[0]), "sar": float(sar[0])}


def pesq_raw_to_mos_lqo(raw_mos: float | np.ndarray) -> float | np.ndarray:
    """ITU-T P.862.1 mapping from raw narrow-band P.862 MOS to MOS-LQO.

    ``MOS-LQO = 0.999 + 4 / (1 + exp(-1.4945 * raw + 4.6607))``.

    References:
        ITU-T Recommendation P.862.1 (2003).
    """
    raw = np.asarray(raw_mos, dtype=np.float64)
    out = _LQO_MIN + _LQO_SPAN / (1.0 + np.exp(-_P862_1_SLOPE * raw + _P862_1_OFFSET))
    return float(out) if np.ndim(out) == 0 else out


def pesq_mos_lqo_to_raw(mos_lqo: float | np.ndarray) -> float | np.ndarray:
    """Inverse of :func:`pesq_raw_to_mos_lqo`: raw narrow-band P.862 MOS from P.862.1 MOS-LQO.

    ``raw = (4.6607 - ln(4 / (MOS-LQO - 0.999) - 1)) / 1.4945``. MOS-LQO is clipped into the open interval
    ``(0.999, 4.999)`` first (the ``pesq`` C code computes it in float32, so a value at the very edge could
    otherwise give inf). NaN stays NaN.

    References:
        ITU-T Recommendation P.862.1 (2003).
    """
    lqo = np.asarray(mos_lqo, dtype=np.float64)
    tiny = 1e-7
    lqo = np.clip(lqo, _LQO_MIN + tiny, _LQO_MIN + _LQO_SPAN - tiny)
    out = (_P862_1_OFFSET - np.log(_LQO_SPAN / (lqo - _LQO_MIN) - 1.0)) / _P862_1_SLOPE
    return float(out) if np.ndim(out) == 0 else out


def _pesq_or_nan(sr: int, ref: np.ndarray, deg: np.ndarray, mode: str) -> float:
    import pesq

    try:
        return float(pesq.pesq(sr, ref, deg, mode))
    except pesq.PesqError as err:  # NoUtterancesError, BufferTooShortError, ...
        warnings.warn(
            f"PESQ ({mode}) failed: {type(err).__name__}: {err!s}; returning NaN for this utterance",
            MetricWarning,
            stacklevel=3,
        )
        return math.nan


def pesq_scores(reference: Any, degraded: Any, sr: int = 16000) -> dict[str, float]:
    """Narrow-band (raw P.862 MOS) and wide-band (P.862.2 MOS-LQO) PESQ.

    The ``pesq`` package (0.0.4) returns only the *mapped* score: for ``mode='nb'`` the P.862.1 MOS-LQO
    ``0.999 + 4 / (1 + exp(-1.4945 raw + 4.6607))`` (see ``pesqmain.h``, where the raw ``pesq_mos`` is computed
    but not returned by the Cython wrapper). The paper reports PESQ on the raw P.862 scale (1.9-3.2), so the raw
    narrow-band MOS is recovered exactly by inverting that monotonic mapping (:func:`pesq_mos_lqo_to_raw`); it
    ranges from -0.5 to 4.5 (identical signals give 4.5). The wide-band score is P.862.2 MOS-LQO as returned.
    Narrow-band P.862 is run on the 16 kHz signal directly (the ``pesq`` C code supports nb mode at 16 kHz).

    When PESQ cannot score an utterance (no utterance detected, signal shorter than 1/4 s, silent reference)
    a :class:`MetricWarning` is emitted and NaN is returned for that mode instead of failing the whole job (the
    speech task leaves NaN out of its per-SNR means and counts them as ``<metric>_n_failed``).

    Args:
        reference: Clean speech.
        degraded: Enhanced (or noisy) speech, same length.
        sr: Sample rate, 8000 or 16000 Hz. At 8 kHz there is no wide-band mode and ``pesq_wb`` is NaN.

    Returns:
        ``{"pesq_nb": raw narrow-band MOS, "pesq_wb": wide-band MOS-LQO}``.

    Raises:
        DataError: If ``sr`` is not 8000 or 16000, or the signals differ in length or contain NaN/inf.

    Shape:
        - reference, degraded: ``(samples,)``.

    References:
        ITU-T P.862 (2001), P.862.1 (2003), P.862.2 (2007); https://github.com/ludlows/PESQ.
    """
    if sr not in (8000, 16000):
        raise DataError(f"PESQ needs audio at 8000 or 16000 Hz, got sr={sr}; resample the signals first")
    ref = _as_signal(reference, "reference")
    deg = _as_signal(degraded, "degraded")
    _same_length(reference=ref, degraded=deg)
    if not np.any(ref):
        warnings.warn("PESQ: reference is all zeros; returning NaN", MetricWarning, stacklevel=2)
        return {"pesq_nb": math.nan, "pesq_wb": math.nan}
    nb_lqo = _pesq_or_nan(sr, ref, deg, "nb")
    pesq_nb = math.nan if math.isnan(nb_lqo) else float(pesq_mos_lqo_to_raw(nb_lqo))
    pesq_wb = _pesq_or_nan(sr, ref, deg, "wb") if sr == 16000 else math.nan
    return {"pesq_nb": pesq_nb, "pesq_wb": pesq_wb}


def stoi_score(reference: Any, degraded: Any, sr: int = 16000, extended: bool = False) -> float:
    """Short-time objective intelligibility (STOI) via ``pystoi``.

    Args:
        reference: Clean speech.
        degraded: Enhanced (or noisy) speech, same length.
        sr: Sample rate in Hz (pystoi resamples to 10 kHz internally).
        extended: Use extended STOI (ESTOI).

    Returns:
        STOI in [0, 1] (about 1 for identical signals).

    Raises:
        DataError: If the signals differ in length or contain NaN/inf.

    Shape:
        - reference, degraded: ``(samples,)``.

    References:
        Taal et al. IEEE TASLP 2011. https://github.com/mpariente/pystoi
    """
    from pystoi import stoi

    ref = _as_signal(reference, "reference")
    deg = _as_signal(degraded, "degraded")
    _same_length(reference=ref, degraded=deg)
    return float(stoi(ref, deg, int(sr), extended=extended))


def score_utterance(
    speech: Any, noise: Any, estimate: Any, mixture: Any, sr: int = 16000
) -> dict[str, float]:
    """All speech metrics of one enhanced utterance, and of the unprocessed mixture as a baseline.

    Args:
        speech: Clean speech ``s``.
        noise: The scaled noise actually mixed, so that ``mixture = s + n``.
        estimate: Enhanced speech ``s_hat``.
        mixture: Noisy input ``y``.
        sr: Sample rate in Hz (16000 in the paper).

    Returns:
        ``sdr, sir, sar, pesq_nb, pesq_wb, stoi`` for the estimate and the same keys with ``_input`` appended
        for the mixture scored as if it were the estimate. PESQ values are NaN (with a warning) when PESQ fails.

    Raises:
        DataError: As :func:`bss_eval_speech` (notably for an all-zero estimate).

    Shape:
        - all inputs: ``(samples,)``.

    References:
        See :func:`bss_eval_speech` (computed by :class:`vaenmf.metrics.bss_eval.SpeechBSSEval`, which shares
        the reference-side work between the two estimates), :func:`pesq_scores`, :func:`stoi_score`.
    """
    scorer, s_hat, y = utterance_scorer(speech, noise, estimate, mixture, sr)
    return {**scorer(s_hat, ""), **scorer(y, "_input")}


def utterance_scorer(
    speech: Any, noise: Any, estimate: Any, mixture: Any, sr: int = 16000
) -> tuple[Callable[[np.ndarray, str], dict[str, float]], np.ndarray, np.ndarray]:
    """The checked signals of one utterance and the function that scores one of them against its references.

    Shared by :func:`score_utterance` and the scoring pool (:func:`vaenmf.metrics.pool.score_parts`), which
    scores the estimate and the input separately: the same conversions, checks and calls in the same order.

    Returns:
        ``(score, estimate, mixture)``: ``score(signal, suffix)`` gives BSS Eval, PESQ and STOI of ``signal``
        with ``suffix`` appended to every key; the estimate and the mixture as checked float signals.

    Raises:
        DataError: For a signal that is not one finite 1-D waveform, or signals of different lengths.
    """
    s = _as_signal(speech, "speech")
    n = _as_signal(noise, "noise")
    s_hat = _as_signal(estimate, "estimate")
    y = _as_signal(mixture, "mixture")
    _same_length(speech=s, noise=n, estimate=s_hat, mixture=y)
    from vaenmf.metrics.bss_eval import SpeechBSSEval

    # The same BSS Eval v3 numbers as bss_eval_speech (tested to 0.01 dB), with the references' Gram matrices
    # built once for both the estimate and the mixture.
    bss = SpeechBSSEval(np.stack([s, n]))

    def score(est: np.ndarray, suffix: str) -> dict[str, float]:
        scores: dict[str, float] = {}
        scores.update(bss(est))
        scores.update(pesq_scores(s, est, sr))
        scores["stoi"] = stoi_score(s, est, sr)
        return {f"{k}{suffix}": scores[k] for k in SCORE_KEYS}

    return score, s_hat, y
