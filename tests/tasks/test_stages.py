"""vaenmf.tasks.stages: per-stage wall/CPU time and peak memory, as recorded in every job's metrics.json."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from vaenmf.tasks.stages import StageClock

MB = 1024 * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-stage peaks need /proc/self/clear_refs")
def test_each_stage_has_its_own_peak_memory():
    clock = StageClock()
    with clock.stage("light"):
        pass
    with clock.stage("heavy"):
        block = np.ones(300 * MB // 8)  # 300 MiB, touched
        del block
    with clock.stage("after"):  # the heavy stage's memory is freed: its peak must not carry over
        pass
    peaks = clock.peak_rss_mb
    assert clock.scope == "stage"
    assert peaks["heavy"] - peaks["light"] > 250
    assert peaks["heavy"] - peaks["after"] > 250
    assert set(clock.metrics()) == {"timings_s", "cpu_timings_s", "peak_rss_mb", "peak_rss_scope"}


def test_a_stage_that_raises_is_still_recorded_and_repeats_accumulate():
    clock = StageClock()
    for _ in range(2):
        with clock.stage("busy"):
            sum(i * i for i in range(200_000))
    with pytest.raises(RuntimeError), clock.stage("fails"):
        raise RuntimeError("boom")
    assert set(clock.wall) == {"busy", "fails"}
    assert clock.cpu["busy"] > 0 and clock.wall["busy"] >= clock.cpu["busy"] * 0.5
    assert clock.peak_rss_mb["fails"] > 0
