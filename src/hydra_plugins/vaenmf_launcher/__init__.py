"""vaenmf's SLURM launcher as a Hydra plugin (Hydra accepts launchers from the ``hydra_plugins`` package only).

The code is in :mod:`vaenmf.cluster.launcher`; ``conf/hydra/launcher/slurm.yaml`` names this class.
"""

from vaenmf.cluster.launcher import VaenmfSlurmLauncher


class SlurmLauncher(VaenmfSlurmLauncher):
    """``launcher=slurm``: see :class:`vaenmf.cluster.launcher.VaenmfSlurmLauncher`."""
