"""The speaker-split policy on its own: gender interleave, the three- and four-way splits, balanced subsets."""

from __future__ import annotations

import numpy as np
import pytest

from vaenmf.data.records import SpeechItem
from vaenmf.data.splits import (
    balanced_subset,
    four_way_speaker_split,
    gender_interleaved,
    partition_by_speaker,
    three_way_speaker_split,
)
from vaenmf.errors import ConfigError


def test_three_way_split_is_gender_balanced_and_disjoint():
    speakers = ["F01", "M00", "F03", "M02", "F05", "M04", "F07", "M06"]
    assert gender_interleaved(speakers) == ["M00", "F01", "M02", "F03", "M04", "F05", "M06", "F07"]
    dictionary, training, test = three_way_speaker_split(speakers)
    assert (dictionary, training, test) == (["M00", "F01", "M02", "F03"], ["M04", "F05"], ["M06", "F07"])
    with pytest.raises(ConfigError, match="at least 3 speakers"):
        three_way_speaker_split(["M00", "F01"])


def test_four_way_split_keeps_the_three_way_training_and_test_speakers():
    """A corpus without a TRAIN/TEST split (NLTK's 16 TIMIT speakers): 6/4/2/4, every part gender-balanced."""
    speakers = [f"M{i:02d}" for i in range(0, 16, 2)] + [f"F{i:02d}" for i in range(1, 16, 2)]
    dictionary, training, validation, test = four_way_speaker_split(speakers)
    assert [len(p) for p in (dictionary, training, validation, test)] == [6, 4, 2, 4]
    _, training3, test3 = three_way_speaker_split(speakers)
    assert (training, test) == (training3, test3)
    parts = (dictionary, training, validation, test)
    assert sorted(sum(parts, [])) == sorted(speakers)  # disjoint and complete
    assert all({s[0] for s in p} == {"M", "F"} for p in parts)
    # The smallest corpus that can be split: one speaker each.
    assert four_way_speaker_split(["M00", "F01", "M02", "F03"]) == (["M00"], ["M02"], ["F01"], ["F03"])
    with pytest.raises(ConfigError, match="at least 4 speakers"):
        four_way_speaker_split(["M00", "F01", "M02"])


def test_partition_and_balanced_subset_keep_the_items_order():
    items = [SpeechItem(spk, f"{spk}_u{j}") for spk in ("A", "B", "C") for j in range(3)]
    first, second = partition_by_speaker(items, {"A", "C"}, ["B"])
    assert [it.name for it in first] == ["A_u0", "A_u1", "A_u2", "C_u0", "C_u1", "C_u2"]
    assert [it.name for it in second] == ["B_u0", "B_u1", "B_u2"]
    # Round robin over speakers in sorted order without a generator; all items when n is None or large.
    assert [it.name for it in balanced_subset(items, 4, None)] == ["A_u0", "B_u0", "C_u0", "A_u1"]
    assert balanced_subset(items, None, None) == items and balanced_subset(items, 20, None) == items
    picked = balanced_subset(items, 3, np.random.default_rng(0))
    assert sorted(it.speaker for it in picked) == ["A", "B", "C"]
