"""Evaluation metrics: speech enhancement (BSS Eval, PESQ, STOI) and muscle synergies (VAF, synergy recovery).

- :mod:`vaenmf.metrics.speech`: the scores of one enhanced utterance (:func:`score_utterance` and its parts);
- :mod:`vaenmf.metrics.bss_eval`: BSS Eval v3 with the reference-side work shared across estimates
  (:class:`~vaenmf.metrics.bss_eval.SpeechBSSEval`, what :func:`score_utterance` computes SDR/SIR/SAR with);
- :mod:`vaenmf.metrics.synergy`: VAF, its summary over movements, and matched cosine of dictionaries.

The public functions are importable from this package directly (``from vaenmf.metrics import vaf``). Heavy
dependencies (mir_eval, pesq, pystoi, scipy) are imported when a metric is first computed, not here.
"""

from vaenmf.metrics.speech import (
    SCORE_KEYS,
    MetricWarning,
    bss_eval_speech,
    pesq_mos_lqo_to_raw,
    pesq_raw_to_mos_lqo,
    pesq_scores,
    score_utterance,
    stoi_score,
)
from vaenmf.metrics.synergy import matched_cosine, summarise_vaf, vaf

__all__ = [
    "SCORE_KEYS",
    "MetricWarning",
    "bss_eval_speech",
    "matched_cosine",
    "pesq_mos_lqo_to_raw",
    "pesq_raw_to_mos_lqo",
    "pesq_scores",
    "score_utterance",
    "stoi_score",
    "summarise_vaf",
    "vaf",
]
