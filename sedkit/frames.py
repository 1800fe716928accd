"""Frame arithmetic shared by the decoder and the score tables (NumPy only, no torch, so that
``sedkit score`` stays light)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["median_filter_frames", "mirror_index"]


def median_filter_frames(seconds: float, frame_hop_s: float) -> int:
    """The median filter's length in frames: the odd number nearest to ``seconds / frame_hop_s``.

    A median filter needs an odd window to be centred; rounding to an integer first and then
    making it odd can overshoot by 1.5 frames (0.45 s at a 0.128 s hop is 3.5 frames: rounded
    to 4, then 5 = 0.64 s). Ties (an even ratio) go up. Check: 0.45 s / 0.128 s -> 3;
    0.45 s / 0.064 s (7.03) -> 7; 0.5 s / 0.125 s (4.0) -> 5; below 2 frames -> 1 (no filter).
    """
    if seconds <= 0:
        return 1
    ratio = seconds / frame_hop_s
    return max(1, 2 * int(math.floor((ratio - 1.0) / 2.0 + 0.5)) + 1)


def mirror_index(n: int, half: int) -> np.ndarray:
    """Indices of ``n`` frames padded by ``half`` on each side with mirrored edges
    (``d c b a | a b c d | d c b a``, period 2n), valid even when ``half`` exceeds ``n``."""
    index = np.arange(-half, n + half) % (2 * n)
    return np.where(index < n, index, 2 * n - 1 - index)
