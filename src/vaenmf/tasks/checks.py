"""Types and ranges of a job's settings, checked when the job starts, before any data is read or fitted.

Struct mode already refuses unknown keys; this refuses known keys with values of the wrong type or range
(``dictionary.rank=abc``, ``dictionary.epochs=-1``, ``activations.mask_power=0``, ...), each with one message naming
the key. A key a method does not compose is skipped (``network.*`` exists only for ``method=drnn``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vaenmf.errors import ConfigError
from vaenmf.validation import check_int, check_number

#: Integer keys and their least value (``None`` allowed where the key is optional).
INTEGER_KEYS: dict[str, tuple[int, bool]] = {
    "seed": (0, False),
    "max_stage_epochs": (1, True),
    "torch_threads": (1, True),
    "dictionary.rank": (1, False),
    "dictionary.mu_iterations": (1, False),
    "dictionary.epochs": (1, False),
    "dictionary.batch_size": (1, False),
    "dictionary.checkpoint_every": (1, False),
    "activations.mu_iterations": (1, False),
    "activations.target_mu_iterations": (1, False),
    "activations.epochs": (1, False),
    "activations.batch_size": (2, False),
    "activations.checkpoint_every": (1, False),
    "reconstruction.mu_iterations": (0, False),
    "reconstruction.checkpoint_every": (1, False),
    "network.epochs": (1, False),
    "network.batch_size": (1, False),
    "network.sequence_length": (1, False),
    "network.checkpoint_every": (1, False),
    "synergy.activation_mu_iterations": (1, False),
    "synergy.figure_subject": (1, False),
    "synergy.figure_movement": (1, False),
    "data.dict_speech_frames": (1, False),
    "data.dict_noise_frames": (1, False),
    "data.n_train_utterances": (1, True),
    "data.n_test_utterances": (1, True),
}
#: Real keys: (lower bound, whether the bound itself is allowed, upper bound exclusive or None).
NUMBER_KEYS: dict[str, tuple[float, bool, float | None]] = {
    "activations.mask_power": (0.0, False, None),
    "activations.l1": (0.0, True, None),
    "activations.val_fraction": (0.0, True, 1.0),
    "network.val_fraction": (0.0, True, 1.0),
    "dictionary.system.l1": (0.0, True, None),
    "dictionary.system.noise_var": (0.0, False, None),
    "dictionary.system.penalty_weight": (0.0, True, None),
    "data.noise_train_fraction": (0.0, False, 1.0),
}


def _get(cfg: DictConfig, dotted: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_job_values(cfg: DictConfig) -> None:
    """Refuse a job whose settings have the wrong type or range (see the module docstring).

    Raises:
        ConfigError: Naming the first bad key, what it must be, and the value given.
    """
    for key, (minimum, optional) in INTEGER_KEYS.items():
        present, value = _get(cfg, key)
        if present:
            check_int(value, key, minimum, allow_none=optional)
    for key, (low, inclusive, high) in NUMBER_KEYS.items():
        present, value = _get(cfg, key)
        if present:
            bounds = {"at_least": low} if inclusive else {"above": low}
            check_number(value, key, **bounds, below=high)
    for key in ("output_root", "log_dir", "cache_dir"):
        present, value = _get(cfg, f"paths.{key}")
        if present and value is not None and Path(str(value)).exists() and not Path(str(value)).is_dir():
            raise ConfigError(f"paths.{key}={value} is a file; it must be a folder (or not exist yet)")
    present, snrs = _get(cfg, "data.test_snrs")
    if present and (
        not snrs
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in snrs)
    ):
        raise ConfigError(
            f"data.test_snrs must be a nonempty list of finite numbers (dB), got {list(snrs or [])!r}"
        )
