"""The scoring pool (vaenmf.metrics.pool): the serial path's numbers, in order, on one BLAS thread per worker."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from vaenmf.data.records import Mixture
from vaenmf.errors import ConfigError
from vaenmf.metrics import SCORE_KEYS, MetricWarning, score_utterance
from vaenmf.metrics.pool import InputScoreCache, ScoringPool, job_cpus, score_parts, scoring_workers
from vaenmf.tasks.runtime import single_threaded
from vaenmf.tasks.speech import enhance_and_score

SR = 16000
#: The score columns of a row (the others name the utterance).
SCORE_COLUMNS = (*SCORE_KEYS, *(f"{k}_input" for k in SCORE_KEYS))


def _utterance(seed: int, seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Speech-like bursts, noise, an imperfect estimate and the mixture (float64)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 110.0 + 20.0 * np.sin(2 * np.pi * 0.9 * t) + 10 * rng.random()
    phase = 2 * np.pi * np.cumsum(f0) / SR
    s = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 2
    s = 0.3 * s / np.max(np.abs(s)) + 1e-3 * rng.standard_normal(t.size)
    n = 0.05 * rng.standard_normal(t.size)
    y = s + n
    estimate = s + 0.3 * n + 0.01 * rng.standard_normal(t.size)
    return s, n, estimate, y


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal floats, NaN equal to NaN (a failed PESQ)."""
    return a.keys() == b.keys() and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


@pytest.fixture(scope="module")
def utterances():
    items = [_utterance(seed) for seed in range(5)]
    # PESQ cannot score 1/8 s: NaN with a MetricWarning, and pystoi warns too (the serial path's behaviour).
    s, n, _, _ = _utterance(9, seconds=0.5)
    quiet = np.zeros(SR // 8)
    quiet[::400] = 1e-3  # BSS Eval needs non-silent sources
    items.append((quiet, n[: quiet.size], quiet + 0.1 * n[: quiet.size], quiet + n[: quiet.size]))
    return items


@pytest.fixture(scope="module")
def serial(utterances):
    """The serial path: :func:`score_utterance` in this process on one BLAS thread, as the speech task ran it."""
    with warnings.catch_warnings(record=True) as caught, single_threaded():
        warnings.simplefilter("always")
        rows = [score_utterance(*u, SR) for u in utterances]
    return rows, [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_pool_gives_the_serial_numbers_in_order_and_reraises_warnings(utterances, serial, start_method):
    rows, serial_warnings = serial
    assert any(math.isnan(v) for v in rows[-1].values())  # the case a pool could lose is really there
    assert MetricWarning in {category for category, _ in serial_warnings}
    items = [(i, (*u, SR)) for i, u in enumerate(utterances)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ScoringPool(workers=2, max_pending=2, start_method=start_method) as pool:
            out = list(pool.imap(items))
    assert [tag for tag, _ in out] == list(range(len(utterances)))
    for (_, scores), expected in zip(out, rows, strict=True):
        assert _same(scores, expected)
    assert [(w.category, str(w.message)) for w in caught] == serial_warnings
    assert pool.score_cpu_s > 0


def test_in_process_path_is_the_serial_path(utterances, serial):
    rows, _ = serial
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        with ScoringPool(workers=0) as pool:
            out = [scores for _, scores in pool.imap((i, (*u, SR)) for i, u in enumerate(utterances))]
    assert all(_same(a, b) for a, b in zip(out, rows, strict=True))


def test_pool_pulls_at_most_max_pending_items_ahead(utterances):
    pulled = []

    def items():
        for i, u in enumerate(utterances[:4]):
            pulled.append(i)
            yield i, (*u, SR)

    with ScoringPool(workers=1, max_pending=2) as pool:
        for tag, _ in pool.imap(items()):
            # Utterance ``tag`` is done; at most max_pending later ones were handed to the worker before it.
            assert len(pulled) - 1 - tag <= 2
    assert pulled == [0, 1, 2, 3]


def _worker_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [info["num_threads"] for info in threadpool_info()]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_run_every_blas_pool_on_one_thread(start_method):
    with ScoringPool(workers=1, start_method=start_method) as pool:
        assert pool._executor is not None
        threads = pool._executor.submit(_worker_threads).result()
    assert threads and set(threads) == {1}


def test_a_failed_utterance_fails_the_loop_with_its_message(utterances):
    s, n, _, y = utterances[0]
    with pytest.raises(Exception, match="all zeros"), ScoringPool(workers=1) as pool:
        list(pool.imap([(0, (s, n, np.zeros_like(s), y, SR))]))


def test_job_cpus_reads_slurm_then_the_launcher_then_the_affinity():
    assert job_cpus({"SLURM_CPUS_PER_TASK": "6", "VAENMF_JOB_CPUS": "1"}) == 6
    assert job_cpus({"VAENMF_JOB_CPUS": "3"}) == 3
    assert job_cpus({}) >= 1
    with pytest.raises(ConfigError, match="SLURM_CPUS_PER_TASK"):
        job_cpus({"SLURM_CPUS_PER_TASK": "four"})


def test_scoring_workers_default_leaves_one_cpu_to_the_enhancing_process():
    assert scoring_workers(None, {"SLURM_CPUS_PER_TASK": "8"}) == 7
    assert scoring_workers(None, {"VAENMF_JOB_CPUS": "2"}) == 1
    assert scoring_workers(None, {"VAENMF_JOB_CPUS": "1"}) == 0
    assert scoring_workers(3, {"VAENMF_JOB_CPUS": "1"}) == 3
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="scoring_workers"):
            scoring_workers(bad)


class _HalfMask:
    """A stand-in separator: half of the noisy magnitude."""

    def __call__(self, mag: torch.Tensor) -> torch.Tensor:
        return 0.5 * mag


def _test_sets(utterances) -> dict[float, list[Mixture]]:
    test_sets = {}
    for snr in (0.0, 5.0):
        test_sets[snr] = [
            Mixture(
                name=f"u{i}_{snr}",
                snr=snr,
                noise_kind="factory",
                speech=torch.as_tensor(s, dtype=torch.float32),
                noise=torch.as_tensor(n, dtype=torch.float32),
                mixture=torch.as_tensor(s + n, dtype=torch.float32),
                sr=SR,
                utterance=f"u{i}",
            )
            for i, (s, n, _, _) in enumerate([*utterances[:2], utterances[-1]])
        ]
    return test_sets


def _rows_with_warnings(**kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = enhance_and_score(**kwargs)
    return rows, [(w.category, str(w.message)) for w in caught]


def test_enhance_and_score_rows_are_the_same_with_workers_and_with_cached_input_scores(utterances, tmp_path):
    test_sets = _test_sets(utterances)
    timings: list[dict] = [{}, {}, {}]
    cache = InputScoreCache(tmp_path / "input_scores")
    serial, serial_warned = _rows_with_warnings(
        separator=_HalfMask(), test_sets=test_sets, workers=0, timings=timings[0]
    )
    filling, filling_warned = _rows_with_warnings(
        separator=_HalfMask(), test_sets=test_sets, workers=2, timings=timings[1], input_cache=cache
    )
    reusing, reusing_warned = _rows_with_warnings(
        separator=_HalfMask(), test_sets=test_sets, workers=0, timings=timings[2], input_cache=cache
    )
    assert [r["utterance"] for r in serial] == [f"u{i}_{snr}" for snr in (0.0, 5.0) for i in range(3)]
    # The 1/8 s mixture has NaN PESQ (estimate and input): NaN == NaN is False, so compare with _same.
    assert any(math.isnan(r["pesq_nb_input"]) for r in serial)
    for other in (filling, reusing):
        assert len(other) == len(serial)
        for a, b in zip(serial, other, strict=True):
            assert {k: a[k] for k in a if k not in SCORE_COLUMNS} == {
                k: b[k] for k in b if k not in SCORE_COLUMNS
            }
            assert _same({k: a[k] for k in SCORE_COLUMNS}, {k: b[k] for k in SCORE_COLUMNS})
            assert list(a) == list(b)  # the same columns in the same order
    # The inputs' warnings (PESQ of the 1/8 s input) are said again when their scores come from the cache.
    assert serial_warned and filling_warned == serial_warned and reusing_warned == serial_warned
    assert [t["input_scores_cached"] for t in timings] == [False, False, True]
    assert timings[0]["workers"] == 0 and timings[1]["workers"] == 2
    assert timings[1]["score_cpu_s"] > timings[2]["score_cpu_s"] > 0 and timings[1]["enhance_cpu_s"] > 0


def test_input_scores_are_keyed_by_the_mixtures(utterances, tmp_path):
    test_sets = _test_sets(utterances)
    mixtures = [m for group in test_sets.values() for m in group]
    key = InputScoreCache.key(mixtures)
    assert InputScoreCache.key(list(mixtures)) == key
    changed = [*mixtures[:-1], Mixture(**{**mixtures[-1].__dict__, "noise": mixtures[-1].noise * 1.001})]
    assert InputScoreCache.key(changed) != key
    assert InputScoreCache.key(mixtures[:-1]) != key
    cache = InputScoreCache(tmp_path)
    assert cache.load(key, len(mixtures)) is None
    cache.save(key, [({"sdr_input": 1.5, "sar_input": math.inf}, [(MetricWarning, "m")])] * len(mixtures))
    loaded = cache.load(key, len(mixtures))
    assert loaded is not None and loaded[0] == (
        {"sdr_input": 1.5, "sar_input": math.inf},
        [(MetricWarning, "m")],
    )
    assert cache.load(key, len(mixtures) + 1) is None  # another test set under a colliding name is not used


def test_the_two_halves_are_score_utterance(utterances, serial):
    rows, _ = serial
    with single_threaded():
        for u, expected in zip(utterances, rows, strict=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimate, _, inputs, _ = score_parts(*u, SR)
                alone, _, none, nothing = score_parts(*u, SR, with_input=False)
            assert inputs is not None and _same({**estimate, **inputs}, expected)
            assert list({**estimate, **inputs}) == list(expected)
            assert _same(alone, estimate) and none is None and nothing == []
