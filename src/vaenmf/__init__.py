"""vaenmf: nonnegative deep dictionary learning (VAE-NMF, NMF, DNMF, DRNN) for speech and EMG.

References:
    Xie, Li, Wang, Xu, Mengersen. "A variational autoencoder-based nonnegative matrix factorisation model
    for deep dictionary learning".
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["VAENMFEstimator", "__version__", "encode", "fit_dictionary"]


def __getattr__(name: str):
    # Lazy: importing the package must not pull in Lightning/Hydra for people who only want the NMF functions.
    if name in ("fit_dictionary", "encode"):
        from vaenmf import api

        return getattr(api, name)
    if name == "VAENMFEstimator":
        from vaenmf.estimators import VAENMFEstimator

        return VAENMFEstimator
    raise AttributeError(f"module 'vaenmf' has no attribute {name!r}")
