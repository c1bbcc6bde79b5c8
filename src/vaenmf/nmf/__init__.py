"""Nonnegative matrix factorisation as pure tensor functions (no Lightning, no I/O)."""

from vaenmf.nmf.divergence import beta_divergence
from vaenmf.nmf.fit import NMFResult, init_factors, nmf, normalize_dictionary
from vaenmf.nmf.masks import separate_mu, separate_with_activations, wiener_mask
from vaenmf.nmf.updates import fit_activations, nmf_iteration_, update_h, update_w

__all__ = [
    "NMFResult",
    "beta_divergence",
    "fit_activations",
    "init_factors",
    "nmf",
    "nmf_iteration_",
    "normalize_dictionary",
    "separate_mu",
    "separate_with_activations",
    "update_h",
    "update_w",
    "wiener_mask",
]
