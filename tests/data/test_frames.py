"""Dictionary frame picking: near-silent frames dropped, a random subset kept in time order."""

from __future__ import annotations

import numpy as np
import torch

from vaenmf.data.frames import drop_silent_frames, select_frames


def test_frame_helpers():
    mag = torch.ones(257, 10)
    mag[:, 3] = 1e-4  # 80 dB down: dropped
    assert drop_silent_frames(mag, 40.0).shape == (257, 9)
    assert drop_silent_frames(mag, None).shape == (257, 10)
    X = torch.arange(20.0).reshape(1, 20)
    sel = select_frames(X, 5, np.random.default_rng(0))
    assert sel.shape == (1, 5) and bool((sel[0, 1:] > sel[0, :-1]).all())
    assert select_frames(X, 50, np.random.default_rng(0)) is X
