"""Nonnegative matrix factorisation as pure tensor functions (no Lightning, no I/O)."""

from vaenmf.nmf.batched import BatchedNMFResult, fit_activations_batched, nmf_batched
from vaenmf.nmf.divergence import beta_divergence
from vaenmf.nmf.fit import NMFResult, init_factors, nmf, normalize_dictionary
from vaenmf.nmf.masks import separate_mu, separate_with_activations, wiener_mask
from vaenmf.nmf.updates import fit_activations, nmf_iteration_, update_h, update_w

__all__ = [
    "BatchedNMFResult",
    "NMFResult",
    "beta_divergence",
    "fit_activations",
    "fit_activations_batched",
    "init_factors",
    "nmf",
    "nmf_batched",
    "nmf_iteration_",
    "normalize_dictionary",
    "separate_mu",
    "separate_with_activations",
    "update_h",
    "update_w",
    "wiener_mask",
]
