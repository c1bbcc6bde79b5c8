"""Plain ``nn.Module`` models (no Lightning): VAE-NMF (one model, or a stack of many trained at once), its Gamma
sampler and KL, and the Kang et al. DNN."""

from vaenmf.models.encoding_dnn import EncodingDNN
from vaenmf.models.gamma import (
    AUTO_BOOST_SHAPE,
    SAMPLERS,
    kl_gamma,
    rsvi_boost,
    sample_gamma,
    sample_gamma_rsvi,
)
from vaenmf.models.vae_nmf import LIKELIHOODS, VAENMF
from vaenmf.models.vae_nmf_stack import StackedVAENMFResult, VAENMFStack, fit_vae_nmf_stack

__all__ = [
    "AUTO_BOOST_SHAPE",
    "LIKELIHOODS",
    "SAMPLERS",
    "VAENMF",
    "EncodingDNN",
    "StackedVAENMFResult",
    "VAENMFStack",
    "fit_vae_nmf_stack",
    "kl_gamma",
    "rsvi_boost",
    "sample_gamma",
    "sample_gamma_rsvi",
]
