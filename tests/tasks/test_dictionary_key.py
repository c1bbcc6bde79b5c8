"""The dictionary cache key: what determines a fit, and nothing else."""

from __future__ import annotations

import torch
from hydra import compose, initialize_config_dir

from vaenmf.tasks.dictionary import dictionary_key
from vaenmf.train import CONFIG_DIR


def _dictionary(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides)).dictionary


def test_methods_with_the_same_dictionary_share_its_cache_entry():
    X = torch.rand(20, 50)
    nmf = dictionary_key(X, _dictionary("method=nmf"), 0)
    # DNMF's analysis bases and the nmf_dnn ablation row fit the same NMF dictionaries.
    assert dictionary_key(X, _dictionary("method=dnmf"), 0) == nmf
    assert dictionary_key(X, _dictionary("method=nmf_dnn"), 0) == nmf
    assert dictionary_key(X, _dictionary("method=nmf", "dictionary.checkpoint_every=7"), 0) == nmf
    vae = dictionary_key(X, _dictionary("method=vae_nmf"), 0)
    assert dictionary_key(X, _dictionary("method=vae_nmf_mu"), 0) == vae != nmf
    # Anything the fit reads changes the key: rank, divergence, iterations, seed, data.
    assert dictionary_key(X, _dictionary("method=nmf", "dictionary.rank=7"), 0) != nmf
    assert dictionary_key(X, _dictionary("method=nmf", "dictionary.system.beta=2"), 0) != nmf
    assert dictionary_key(X, _dictionary("method=nmf", "dictionary.mu_iterations=10"), 0) != nmf
    assert dictionary_key(X, _dictionary("method=nmf"), 1) != nmf
    assert dictionary_key(X + 1, _dictionary("method=nmf"), 0) != nmf
    # The synergy task's rank-4 Euclidean settings are another fit.
    assert dictionary_key(X, _dictionary("method=nmf", "task=synergy"), 0) != nmf
