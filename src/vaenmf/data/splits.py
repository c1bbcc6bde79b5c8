"""The speaker-split policy of the speech data: which speakers build the dictionary, train, validate and test.

Speakers are disjoint between the four uses (DESIGN.md section 4): dictionary speakers (speech dictionary
frames), encoder-training speakers (training mixtures for the encoding DNN / DRNN / DNMF), validation speakers
(the mixtures every choice of a default is made on) and test speakers (the mixtures the tables report).

- TIMIT (:func:`timit_pools`): test = the core test set (24 speakers, SI+SX, 192 utterances); validation = the
  development set of the Kaldi TIMIT recipe (50 other TEST speakers, SI+SX, 400 utterances); the TRAIN
  speakers (SI+SX only) are shuffled with the given generator and split ``dict_speaker_fraction`` / rest.
- A TIMIT copy without a TRAIN/TEST split, such as NLTK's sample (:func:`four_way_speaker_split`): speakers
  are ordered male/female alternately and split about 3/8 dictionary, 1/4 training, 1/8 validation, 1/4 test
  (NLTK's 16 speakers: 6/4/2/4); none of them is a core test or development speaker of the real corpus.
- A folder corpus, one folder per speaker (:func:`folder_pools`, :func:`fraction_speaker_split`): the speakers,
  sorted by folder name, are dealt to the dictionary, training, validation and test parts in proportion to
  ``data.speaker_fractions`` (default 3/8, 1/4, 1/8, 1/4), each part's speakers spread evenly over the sorted
  list; the same for every seed (as TIMIT's test set is), so seeds vary the fits, not the test speakers.
- Demo (:func:`three_way_speaker_split`, done by the data module): the ``demo_speakers`` are split 1/2
  dictionary, 1/4 training, 1/4 test (8 speakers: 4/2/2, each part half male, half female), and the
  validation speakers are further synthetic voices of their own (``demo_validation_speakers``), so adding
  them changed none of the other three parts.

:func:`balanced_subset` then picks a number of utterances spread evenly over a part's speakers.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vaenmf.data.folder import folder_utterances
from vaenmf.data.timit import core_test_set, development_set, dictionary_pool, index_timit
from vaenmf.errors import ConfigError, CorpusLayoutError

if TYPE_CHECKING:
    # Only for annotations: the functions that build items import it when called, so that the split policy
    # (fraction_speaker_split) is importable without torch, as `vaenmf-data check` needs it.
    from vaenmf.data.records import SpeechItem

__all__ = [
    "DEFAULT_SPEAKER_FRACTIONS",
    "SpeakerPools",
    "SPEAKER_PARTS",
    "balanced_subset",
    "folder_pools",
    "four_way_speaker_split",
    "fraction_speaker_split",
    "gender_interleaved",
    "partition_by_speaker",
    "three_way_speaker_split",
    "timit_pools",
]

log = logging.getLogger(__name__)

#: The four uses of speakers, in the order of :class:`SpeakerPools` and of ``data.speaker_fractions``.
SPEAKER_PARTS = ("dictionary", "training", "validation", "test")
#: A folder corpus's default ``speaker_fractions`` (dictionary, training, validation, test): as NLTK's TIMIT sample.
DEFAULT_SPEAKER_FRACTIONS = {"dictionary": 0.375, "training": 0.25, "validation": 0.125, "test": 0.25}


@dataclass
class SpeakerPools:
    """The utterances of each use, speakers disjoint between them.

    Attributes:
        dictionary: Speech dictionary utterances.
        training: Encoder-training utterances.
        validation: Validation utterances (may be empty: a TIMIT copy without the development set).
        test: Test utterances.
    """

    dictionary: list[SpeechItem]
    training: list[SpeechItem]
    validation: list[SpeechItem]
    test: list[SpeechItem]


def gender_interleaved(speakers: Sequence[str]) -> list[str]:
    """Sort speakers, then alternate male/female (TIMIT and demo ids start with the gender letter)."""
    males = sorted(s for s in speakers if s.upper().startswith("M"))
    others = sorted(s for s in speakers if not s.upper().startswith("M"))
    out = []
    for i in range(max(len(males), len(others))):
        out += males[i : i + 1] + others[i : i + 1]
    return out


def three_way_speaker_split(speakers: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """About 1/2 dictionary, 1/4 training, 1/4 test; each part gender-balanced where possible.

    Raises:
        ConfigError: With fewer than 3 speakers.
    """
    n = len(speakers)
    if n < 3:
        raise ConfigError(
            f"need at least 3 speakers for disjoint dictionary/training/test speakers, got {n}; "
            "increase demo_speakers"
        )
    order = gender_interleaved(speakers)
    n_test = max(1, round(n / 4))
    n_train = max(1, round(n / 4))
    n_dict = n - n_test - n_train
    return order[:n_dict], order[n_dict : n_dict + n_train], order[n_dict + n_train :]


def four_way_speaker_split(speakers: Sequence[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """About 3/8 dictionary, 1/4 training, 1/8 validation, 1/4 test; gender-balanced where possible.

    The training and test parts are those of :func:`three_way_speaker_split`; the validation speakers are taken
    from the end of its dictionary part (at least one).

    Raises:
        ConfigError: With fewer than 4 speakers.
    """
    n = len(speakers)
    if n < 4:
        raise ConfigError(
            f"need at least 4 speakers for disjoint dictionary/training/validation/test speakers, got {n}"
        )
    dictionary, training, test = three_way_speaker_split(speakers)
    n_val = min(max(1, round(n / 8)), len(dictionary) - 1)
    return dictionary[:-n_val], training, dictionary[-n_val:], test


def partition_by_speaker(
    items: Iterable[SpeechItem], *groups: Collection[str]
) -> tuple[list[SpeechItem], ...]:
    """The items of each group of speakers, in the items' order (one list per group)."""
    items = list(items)
    return tuple([it for it in items if it.speaker in group] for group in groups)


def balanced_subset(
    items: list[SpeechItem], n: int | None, rng: np.random.Generator | None
) -> list[SpeechItem]:
    """Up to ``n`` items spread over speakers: round robin over speakers (shuffled within each with ``rng``)."""
    if n is None or n >= len(items):
        return list(items)
    by_speaker: dict[str, list[SpeechItem]] = {}
    for it in items:
        by_speaker.setdefault(it.speaker, []).append(it)
    speakers = sorted(by_speaker)
    if rng is not None:
        speakers = [speakers[i] for i in rng.permutation(len(speakers))]
        for s in speakers:
            by_speaker[s] = [by_speaker[s][i] for i in rng.permutation(len(by_speaker[s]))]
    out: list[SpeechItem] = []
    depth = 0
    while len(out) < n:
        for s in speakers:
            if depth < len(by_speaker[s]) and len(out) < n:
                out.append(by_speaker[s][depth])
        depth += 1
    return out


def timit_pools(root: Path, dict_speaker_fraction: float, rng: np.random.Generator) -> SpeakerPools:
    """The dictionary, encoder-training, validation and test utterances of a TIMIT copy (see the module docstring).

    Args:
        root: The TIMIT folder.
        dict_speaker_fraction: Fraction of the TRAIN speakers that build the speech dictionary.
        rng: Shuffles the TRAIN speakers (used only when the copy has the core test set).

    Returns:
        The four pools. With a TRAIN/TEST split, ``validation`` holds the development-set speakers present
        (empty, with a warning, when there are none).

    Raises:
        CorpusLayoutError: If the copy has too few TRAIN speakers, or a TEST split without the core test set.
    """
    utts = index_timit(root)
    test = core_test_set(utts)
    pool = dictionary_pool(utts)
    if test:
        if len(test) != 192:
            log.warning("TIMIT core test set under %s has %d utterances (expected 192)", root, len(test))
        development = development_set(utts)
        if not development:
            log.warning(
                "TIMIT at %s has none of the 50 development-set speakers (e.g. TEST/DR1/FAKS0): there are no "
                "validation mixtures (eval_split=validation is refused)",
                root,
            )
        elif len(development) != 400:
            log.warning(
                "TIMIT development set under %s has %d utterances (expected 400)", root, len(development)
            )
        train_speakers = sorted({u.speaker for u in pool if u.split == "TRAIN"})
        if len(train_speakers) < 2:
            raise CorpusLayoutError(
                f"TIMIT at {root} has {len(train_speakers)} TRAIN speakers with SI/SX utterances; need >= 2 "
                "(dictionary and encoder-training speakers must differ)"
            )
        perm = rng.permutation(len(train_speakers))
        shuffled = [train_speakers[i] for i in perm]
        n_dict = min(max(1, round(dict_speaker_fraction * len(shuffled))), len(shuffled) - 1)
        train_pool = _items(u for u in pool if u.split == "TRAIN")
        dictionary, training = partition_by_speaker(
            train_pool, set(shuffled[:n_dict]), set(shuffled[n_dict:])
        )
        return SpeakerPools(dictionary, training, _items(development), _items(test))
    if any(u.split == "TEST" for u in utts):
        raise CorpusLayoutError(
            f"TIMIT at {root} has a TEST split but none of the 24 core test speakers (e.g. TEST/DR1/MDAB0)"
        )
    # No TRAIN/TEST split (e.g. NLTK's sample): split its own speakers four ways.
    speakers = sorted({u.speaker for u in pool})
    log.warning(
        "TIMIT at %s has no TRAIN/TEST split; splitting its %d speakers 3/8, 1/4, 1/8, 1/4 into dictionary, "
        "training, validation and test speakers",
        root,
        len(speakers),
    )
    return SpeakerPools(*partition_by_speaker(_items(pool), *four_way_speaker_split(speakers)))


def _items(utterances: Iterable) -> list[SpeechItem]:
    from vaenmf.data.records import SpeechItem

    return [SpeechItem(u.speaker, u.name, path=u.path) for u in utterances]


def _part_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Speakers per part: ``fraction * n`` rounded by largest remainder, at least one for a positive fraction."""
    exact = [f * n for f in fractions]
    sizes = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: (-(exact[i] - sizes[i]), i))[: n - sum(sizes)]:
        sizes[i] += 1
    for i, f in enumerate(fractions):
        if f > 0 and sizes[i] == 0:  # take one from the largest part that can spare it
            donor = max((j for j in range(len(sizes)) if sizes[j] > 1), key=lambda j: (sizes[j], -j))
            sizes[donor] -= 1
            sizes[i] = 1
    return sizes


def fraction_speaker_split(
    speakers: Sequence[str], fractions: Sequence[float], where: str = "the corpus"
) -> tuple[list[str], ...]:
    """Deal sorted speakers to parts in proportion to ``fractions``, each part spread evenly over the sorted list.

    The part sizes are ``fraction * n`` rounded by largest remainder (at least one speaker for a positive
    fraction); then speaker ``i`` of the sorted list goes to the part furthest behind its share
    (``size * (i + 1) / n - dealt``; ties to the earlier part). With 8 speakers and 3/8, 1/4, 1/8, 1/4 the
    parts are dictionary 0, 3, 7; training 1, 5; validation 4; test 2, 6. Deterministic, no randomness.

    Args:
        speakers: Speaker ids (sorted here).
        fractions: One nonnegative fraction per part, summing to 1 (a zero fraction gives an empty part).
        where: The corpus, for messages.

    Returns:
        One sorted list of speakers per part.

    Raises:
        ConfigError: Fractions that are negative or do not sum to 1; fewer speakers than parts with a positive
            fraction (the message says how many are needed and which fraction could be 0).
    """
    fractions = [float(f) for f in fractions]
    if any(not f >= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(
            f"data.speaker_fractions must be nonnegative and sum to 1 ({', '.join(SPEAKER_PARTS)}), got {fractions}"
        )
    order = sorted(speakers)
    n = len(order)
    needed = sum(f > 0 for f in fractions)
    if n < needed:
        zero = [
            name for name, f in zip(SPEAKER_PARTS, fractions, strict=False) if f > 0 and name == "validation"
        ]
        hint = f" or set data.speaker_fractions.{zero[0]}=0 (no validation speakers)" if zero else ""
        raise ConfigError(
            f"{where} has {n} speaker{'s' if n != 1 else ''} ({', '.join(order) or 'none'}); the speaker split "
            f"needs at least {needed}, one for each of the {', '.join(SPEAKER_PARTS[: len(fractions)])} parts "
            f"with a positive data.speaker_fractions: add speaker folders{hint}"
        )
    sizes = _part_sizes(n, fractions)
    parts: list[list[str]] = [[] for _ in fractions]
    for i, speaker in enumerate(order):
        behind = [
            (sizes[k] * (i + 1) / n - len(parts[k]), -k)
            for k in range(len(parts))
            if len(parts[k]) < sizes[k]
        ]
        k = -max(behind)[1]
        parts[k].append(speaker)
    return tuple(parts)


def folder_pools(root: Path, fractions: Sequence[float]) -> SpeakerPools:
    """The four pools of a folder corpus, one folder per speaker (:mod:`vaenmf.data.folder`).

    Every audio file of a speaker is one utterance; the speakers are split by :func:`fraction_speaker_split`.

    Raises:
        CorpusLayoutError: See :func:`vaenmf.data.folder.folder_utterances`.
        ConfigError: See :func:`fraction_speaker_split`.
    """
    from vaenmf.data.records import SpeechItem

    files = folder_utterances(root)
    items = [
        SpeechItem(speaker, name, path=path)
        for speaker, named in files.items()
        for name, path in named.items()
    ]
    parts = fraction_speaker_split(list(files), fractions, f"data.root={root}")
    return SpeakerPools(*partition_by_speaker(items, *(set(p) for p in parts)))
