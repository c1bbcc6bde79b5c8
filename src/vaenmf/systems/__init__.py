"""Thin LightningModules, one per method: they own losses, optimisers and logging, and know nothing of files."""

from vaenmf.systems.encoding_dnn import EncodingDNNSystem
from vaenmf.systems.nmf import NMFSystem
from vaenmf.systems.vae_nmf import VAENMFSystem

__all__ = ["EncodingDNNSystem", "NMFSystem", "VAENMFSystem"]
