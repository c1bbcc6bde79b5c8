"""Thin LightningModules, one per method: they own losses, optimisers and logging, and know nothing of files."""

from vaenmf.systems.nmf import NMFSystem

__all__ = ["NMFSystem"]
