"""The noise condition of a speech job (``noise=``, ``test_noise=``): which noises, from where.

A condition is one string, so that it labels a job, a sweep value and a report section as it is written:

- ``factory``, ``babble``: the paper's two noises (NOISEX-92 ``factory1`` and ``babble``; the demo corpus
  generates both); ``pooled``: the two together (Table 2). These are the defaults and mean what they always did;
- any NOISEX-92 noise by its file name: ``white``, ``pink``, ``f16``, ``destroyerengine``, ``factory2``,
  ``buccaneer1``, ... (any ``<name>.mat``/``<name>.wav`` in the NOISEX-92 folder, ``data.noisex_root``);
- a user's own noise file by path: ``noise=/data/noises/hum.flac`` (any sample rate, resampled to 16 kHz; what
  ``soundfile`` reads: WAV, FLAC, OGG, AIFF, and NOISEX-style ``.mat``); its name in the per-utterance rows is
  the file's stem (``hum``). A path is anything with a ``/`` in it, or ending in an audio suffix;
- a pool of any of these: ``pooled:white+pink``, ``pooled:factory+/data/noises/hum.wav`` (the noise dictionary
  takes an equal share of its frames from each, the training mixtures cycle through them, every test utterance is
  mixed with each). ``pooled`` is ``pooled:factory+babble`` under its own name. On the command line a sweep
  of conditions is ``noise=factory,pooled:white+pink`` (Hydra's comma separates values; ``+`` never does).

``test_noise`` takes the same strings: the dictionaries and networks are trained on ``noise``, the evaluation
mixtures use ``test_noise`` (mismatched-noise evaluation); null (the default) tests on ``noise``. Either way the
test mixtures use the last 30% of each noise only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaenmf.errors import ConfigError

__all__ = [
    "PAPER_CONDITIONS",
    "DEMO_NOISES",
    "POOL_PREFIX",
    "NoiseSpec",
    "parse_noise",
    "noise_stream",
    "noise_stage_name",
]

#: The paper's conditions (Table 1: factory, babble; Table 2: pooled).
PAPER_CONDITIONS = ("factory", "babble", "pooled")
#: The noises the demo corpus generates (DESIGN.md section 6).
DEMO_NOISES = ("factory", "babble")
#: How a pool of noises is written: ``pooled:white+pink``.
POOL_PREFIX = "pooled:"
#: File suffixes that make a condition a path even without a ``/`` (``noise=hum.wav``).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mat", ".sph")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Seed-stream ids of the paper's noises (their index in ("factory", "babble", "pooled"), as before other noises
# existed, so that their mixtures are those of earlier versions); other names get one from their text.
_PAPER_STREAMS = {"factory": 0, "babble": 1}


@dataclass(frozen=True)
class NoiseSpec:
    """One noise of a condition.

    Attributes:
        name: Its name in mixtures and per-utterance rows (``factory``, ``white``, a file's stem).
        path: The user's file (None: a named NOISEX-92 noise, or the demo's generated one).
    """

    name: str
    path: Path | None = None


def _is_path(item: str) -> bool:
    return "/" in item or "\\" in item or item.lower().endswith(AUDIO_SUFFIXES)


def _one(item: str, key: str, condition: str) -> NoiseSpec:
    if _is_path(item):
        path = Path(item).expanduser()
        if not path.stem:
            raise ConfigError(
                f"{key}={condition!r}: {item!r} names no file; expected the path of an audio file"
            )
        return NoiseSpec(path.stem, path)
    if not _NAME.match(item) or item.lower() == "pooled":
        raise ConfigError(
            f"{key}={condition!r}: {item!r} is not a noise name; expected a NOISEX-92 file name (white, pink, "
            "factory1, ...), factory or babble, or the path of an audio file"
        )
    return NoiseSpec(item.lower())


def parse_noise(condition: Any, key: str = "noise") -> tuple[NoiseSpec, ...]:
    """The noises of a condition string (see the module docstring), in order.

    Args:
        condition: ``factory``, ``white``, ``pooled``, ``pooled:white+pink``, ``/path/to/noise.wav``, ...
        key: The config key it came from, for messages.

    Returns:
        One :class:`NoiseSpec` per noise (two or more for a pool).

    Raises:
        ConfigError: Not a string (a list: the message gives the ``pooled:a+b`` spelling), empty, a pool of fewer
            than two noises or with one twice, or an item that is neither a name nor a path.
    """
    if isinstance(condition, list | tuple) or (
        hasattr(condition, "__iter__") and not isinstance(condition, str)
    ):
        items = [str(v) for v in condition]
        raise ConfigError(
            f"{key}={items}: a pool of noises is written as one word, {key}=pooled:{'+'.join(items)} (a list "
            "cannot name a job, a sweep value or a report section)"
        )
    if not isinstance(condition, str) or not condition.strip():
        raise ConfigError(
            f"{key} must be a noise condition (factory, babble, pooled, a NOISEX-92 name such as white, "
            f"pooled:white+pink, or the path of an audio file), got {condition!r}"
        )
    condition = condition.strip()
    if condition == "pooled":
        return (NoiseSpec("factory"), NoiseSpec("babble"))
    if condition.startswith(POOL_PREFIX):
        items = [item.strip() for item in condition[len(POOL_PREFIX) :].split("+")]
        if len(items) < 2 or not all(items):
            raise ConfigError(
                f"{key}={condition!r}: a pool needs two or more noises joined by '+', e.g. {POOL_PREFIX}white+pink"
            )
        specs = tuple(_one(item, key, condition) for item in items)
        names = [spec.name for spec in specs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"{key}={condition!r}: the pool names {', '.join(twice)} twice; each noise may appear once "
                "(files are named by their stem: rename one)"
            )
        return specs
    if ":" in condition and not _is_path(condition):
        raise ConfigError(
            f"{key}={condition!r}: unknown form; a pool is written {POOL_PREFIX}<noise>+<noise> (e.g. "
            f"{POOL_PREFIX}white+pink)"
        )
    return (_one(condition, key, condition),)


def noise_stream(name: str) -> int:
    """The seed-stream id of a noise (mixture offsets, dictionary frames): the paper's noises keep the ids they
    always had, so their mixtures do not change; any other name gets a stable one from its text."""
    if name in _PAPER_STREAMS:
        return _PAPER_STREAMS[name]
    return 1000 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def noise_stage_name(condition: str) -> str:
    """A folder-safe name for a condition's noise dictionary stage (``noise_dict_<it>``): the condition itself when
    it is one safe word (``factory``, ``white``), else its safe characters and a short hash of it."""
    if _NAME.match(condition):
        return condition
    digest = hashlib.sha256(condition.encode()).hexdigest()[:8]
    return f"{_SAFE.sub('_', condition).strip('_')[-40:]}-{digest}"
