"""A job's numbers are the same with the feature cache off, cold and warm (vaenmf.data.cache)."""

from __future__ import annotations

import json


def test_a_drnn_job_scores_the_same_with_and_without_the_feature_cache(tmp_path, train_cli):
    # The DRNN trains on the training-mixture spectrograms: the entry the cache holds for it.
    base = [
        "experiment=smoke",
        "method=drnn",
        "noise=babble",
        "cache_input_scores=false",
        f"paths.output_root={tmp_path}",
    ]
    runs = {"off": ["cache_features=false"], "cold": [], "warm": []}
    metrics = {}
    for name, extra in runs.items():
        result = train_cli([*base, *extra, f"hydra.run.dir={tmp_path / name}"], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    features = sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "features").iterdir())
    assert features == ["demo_noise", "train_spectra"]  # the DRNN draws no dictionary frames
    for name in ("cold", "warm"):
        assert metrics[name]["rows"] == metrics["off"]["rows"]
        assert metrics[name]["summary"] == metrics["off"]["summary"]
    assert metrics["warm"]["config_hash"] == metrics["off"]["config_hash"]  # cache_features is not science
    # Warm, the data stage reads the prepared noise instead of synthesising a crowd of talkers.
    assert metrics["warm"]["timings_s"]["data"] < metrics["off"]["timings_s"]["data"]
