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

Where a noise is read from (:func:`noisex_folder`, :func:`locate_noise`), how it is cut into its training,
validation and test parts (:func:`noise_split_points`) and the refusal of a part shorter than the utterances mixed
with it (:func:`short_noise_part`) live here, free of torch, so that the jobs (:mod:`vaenmf.data.speech`) and
``vaenmf-data check`` (:mod:`vaenmf.data.check`) resolve and judge a condition the same way.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaenmf.data.noisex import find_noise_file
from vaenmf.errors import ConfigError, CorpusLayoutError

__all__ = [
    "PAPER_CONDITIONS",
    "DEMO_NOISES",
    "NOISE_PARTS",
    "POOL_PREFIX",
    "NoiseSpec",
    "locate_noise",
    "noise_part_lengths",
    "noise_split_points",
    "noisex_folder",
    "parse_noise",
    "noise_stream",
    "noise_stage_name",
    "short_noise_part",
]

#: The paper's conditions (Table 1: factory, babble; Table 2: pooled).
PAPER_CONDITIONS = ("factory", "babble", "pooled")
#: The noises the demo corpus generates (DESIGN.md section 6).
DEMO_NOISES = ("factory", "babble")
#: The parts of each noise, in time order (:func:`noise_split_points`).
NOISE_PARTS = ("training", "validation", "test")
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


def noisex_folder(corpus: str, noisex_root: Any = None, data_root: Any = None) -> Path | None:
    """Where a job reads named noises from (``factory``, ``white``, ...).

    ``noisex_root`` when given; else ``data_root/noisex92`` on TIMIT, and on a folder corpus when that folder
    exists; else None: the demo corpus (and a folder corpus without one) generates factory and babble.

    Args:
        corpus: ``"demo"``, ``"timit"`` or ``"folder"`` (``data.corpus``).
        noisex_root: ``data.noisex_root`` (None or empty: not given).
        data_root: ``data.data_root`` (``DATA_ROOT``).
    """
    if noisex_root:
        return Path(noisex_root).expanduser()
    if not data_root:
        return None
    folder = Path(data_root).expanduser() / "noisex92"
    if corpus == "timit" or (corpus == "folder" and folder.is_dir()):
        return folder
    return None


def locate_noise(spec: NoiseSpec, folder: Path | None, corpus: str, condition: str) -> Path | None:
    """The file a noise of a condition is read from, or None for the demo's generated one.

    Args:
        spec: The noise (:func:`parse_noise`).
        folder: The NOISEX-92 folder (:func:`noisex_folder`), or None.
        corpus: ``data.corpus``, for the message when the noise cannot be had.
        condition: How the condition was written (``noise='white'``), for messages.

    Raises:
        CorpusLayoutError: A noise file that does not exist; a name the NOISEX-92 folder does not hold (the message
            lists the noises it does: :func:`~vaenmf.data.noisex.find_noise_file`).
        ConfigError: A name other than factory and babble without a NOISEX-92 folder.
    """
    if spec.path is not None:
        if not spec.path.is_file():
            raise CorpusLayoutError(
                f"noise file {spec.path} does not exist ({condition}); expected an audio file (WAV, FLAC, OGG, "
                "AIFF or a NOISEX-style .mat), any sample rate"
            )
        return spec.path
    if folder is not None:
        return find_noise_file(folder, spec.name)
    if spec.name in DEMO_NOISES:
        return None
    which = "the demo corpus (data=speech_demo)" if corpus == "demo" else "without a NOISEX-92 folder it"
    raise ConfigError(
        f"noise {spec.name!r}: {which} generates only {' and '.join(DEMO_NOISES)}; for other NOISEX-92 noises "
        "give their folder (+data.noisex_root=/path/to/noisex92 on the demo, data.noisex_root=... or "
        f"DATA_ROOT otherwise), or give a file by path (noise=/path/to/{spec.name}.wav)"
    )


def noise_split_points(n_samples: int, train_fraction: float, validation_fraction: float) -> tuple[int, int]:
    """Where a noise of ``n_samples`` is cut: training part ``[0, a)``, validation ``[a, b)``, test ``[b, n)``.

    ``a = round(train_fraction * n)``, ``b = round((train_fraction + validation_fraction) * n)``.
    """
    return (
        int(round(train_fraction * n_samples)),
        int(round((train_fraction + validation_fraction) * n_samples)),
    )


def noise_part_lengths(n_samples: int, train_fraction: float, validation_fraction: float) -> dict[str, int]:
    """Samples in each part of a noise of ``n_samples`` (:func:`noise_split_points`), keyed by :data:`NOISE_PARTS`."""
    a, b = noise_split_points(n_samples, train_fraction, validation_fraction)
    return {"training": a, "validation": b - a, "test": n_samples - b}


def short_noise_part(
    noise: str,
    part: str,
    part_seconds: float,
    noise_seconds: float,
    utterance: str,
    utterance_seconds: float,
    fractions: tuple[float, float],
    source: str | None = None,
) -> str:
    """The message refusing a noise part shorter than the longest utterance to be mixed with it.

    A noise segment as long as the utterance is drawn from the part, so the part must hold the longest utterance
    of the split that is mixed with it: the training part the training utterances, the validation part the
    validation utterances, the test part the test utterances.

    Args:
        noise: The noise's name (``factory``, ``white``, a file's stem).
        part: ``"training"``, ``"validation"`` or ``"test"``.
        part_seconds: The part's duration at the pipeline's rate.
        noise_seconds: The whole noise's duration.
        utterance: The longest utterance of the split.
        utterance_seconds: Its duration.
        fractions: ``(data.noise_train_fraction, data.noise_validation_fraction)``.
        source: The noise's file, or None for the demo's generated noise (whose length is
            ``data.demo_noise_seconds``).

    Returns:
        One line: the noise, its file, the part and its share, the utterance, and what to change.
    """
    train, validation = fractions
    share = {"training": train, "validation": validation, "test": 1 - train - validation}[part]
    longer = (
        f"a longer noise file than {source}"
        if source is not None
        else f"a longer generated noise (data.demo_noise_seconds, now {noise_seconds:g})"
    )
    return (
        f"the {part} part of the {noise} noise{f' ({source})' if source is not None else ''} "
        f"({part_seconds:.2f} s: {share:.0%} of its {noise_seconds:.2f} s) is shorter than utterance {utterance} "
        f"({utterance_seconds:.2f} s), the longest of the {part} utterances, so it cannot be mixed with it; use "
        f"{longer}, or give the {part} part a larger share of it (data.noise_train_fraction={train:g}, "
        f"data.noise_validation_fraction={validation:g}; the test part is the rest)"
    )
