"""vaenmf's launchers as Hydra plugins (Hydra accepts launchers from the ``hydra_plugins`` package only).

The SLURM launcher's code is in :mod:`vaenmf.cluster.launcher` (``conf/hydra/launcher/slurm.yaml`` names it),
the local parallel launcher's in :mod:`vaenmf.cluster.local` (``conf/hydra/launcher/parallel.yaml``).
"""

from vaenmf.cluster.launcher import VaenmfSlurmLauncher
from vaenmf.cluster.local import ParallelLauncher as _ParallelLauncher


class SlurmLauncher(VaenmfSlurmLauncher):
    """``launcher=slurm``: see :class:`vaenmf.cluster.launcher.VaenmfSlurmLauncher`."""


class ParallelLauncher(_ParallelLauncher):
    """``launcher=parallel``: see :class:`vaenmf.cluster.local.ParallelLauncher`."""
