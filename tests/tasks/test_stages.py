"""vaenmf.tasks.stages: per-stage wall/CPU time and peak memory, as recorded in every job's metrics.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vaenmf.tasks.stages import StageClock

_PEAKS = """
import json, numpy as np
from vaenmf.tasks.stages import StageClock
clock = StageClock()
with clock.stage("light"):
    pass
with clock.stage("heavy"):
    block = np.ones(300 * 1024 * 1024 // 8)  # 300 MiB, touched
    del block
with clock.stage("after"):  # the heavy stage's memory is freed: its peak must not carry over
    pass
print(json.dumps({"peaks": clock.peak_rss_mb, "scope": clock.scope, "keys": sorted(clock.metrics())}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-stage peaks need /proc/self/clear_refs")
def test_each_stage_has_its_own_peak_memory():
    # A fresh process: in a test worker, memory that earlier tests freed stays resident in the allocator and
    # would be reused by the block without raising the resident peak.
    src = str(Path(__file__).resolve().parents[2] / "src")
    run = subprocess.run(
        [sys.executable, "-c", _PEAKS], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": src}
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    peaks = result["peaks"]
    assert result["scope"] == "stage"
    assert peaks["heavy"] - peaks["light"] > 250
    assert peaks["heavy"] - peaks["after"] > 250
    assert result["keys"] == ["cpu_timings_s", "peak_rss_mb", "peak_rss_scope", "timings_s"]


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
