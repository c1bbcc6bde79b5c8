"""The dictionary cache key: what determines a fit, and nothing else."""

from __future__ import annotations

import torch
from hydra import compose, initialize_config_dir

from vaenmf.tasks.dictionary import dictionary_key
from vaenmf.train import CONFIG_DIR


def _model(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides)).model


def test_dnmf_analysis_bases_share_the_nmf_cache_entry():
    X = torch.rand(20, 50)
    nmf = dictionary_key(X, _model("model=nmf"), 0)
    assert dictionary_key(X, _model("model=dnmf"), 0) == nmf
    assert dictionary_key(X, _model("model=dnmf", "separator=dnn"), 0) == nmf
    # Anything the fit reads changes the key: rank, divergence, iterations, seed, data, the method.
    assert dictionary_key(X, _model("model=nmf", "model.rank=7"), 0) != nmf
    assert dictionary_key(X, _model("model=nmf", "model.beta=2"), 0) != nmf
    assert dictionary_key(X, _model("model=nmf", "model.max_iter=10"), 0) != nmf
    assert dictionary_key(X, _model("model=nmf"), 1) != nmf
    assert dictionary_key(X + 1, _model("model=nmf"), 0) != nmf
    assert dictionary_key(X, _model("model=vae_nmf"), 0) != nmf
