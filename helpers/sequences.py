"""Make face sequences a fixed length, with a mask of the real frames.

A recurrent model trained in batches needs every clip to have the same number of
frames, but clips differ in length (and a face detector may keep fewer frames than
asked for). Four strategies, all built on one function, ``fixed_length_indices``,
which says for each output position which input frame it shows (``-1`` = padding):

============  ===========================================  =====================================
strategy      clip longer than ``length``                  clip shorter than ``length``
============  ===========================================  =====================================
``zero_pad``  keep the first ``length`` frames             all frames, then zeros at the END
``truncate``  keep the first ``length`` frames             all frames, then zeros at the END
``uniform``   ``length`` frames spread evenly over clip    all frames, then zeros at the END
``loop``      keep the first ``length`` frames             repeat the clip from its start
============  ===========================================  =====================================

``truncate`` and ``zero_pad`` are the same operation under two names (one names what
happens to long clips, the other to short ones). Padding always goes at the end:
Keras' fast cuDNN LSTM kernel accepts a mask only when it is right-padded.

Every function returns ``(sequence, mask)``: ``sequence`` has shape
``(length,) + frames.shape[1:]`` and the dtype of ``frames``; ``mask`` is a bool
array of shape ``(length,)``, True where the position holds a frame of the clip and
False where it holds padding zeros. With ``loop`` every position holds a real frame,
so its mask is all True; ``repeat_mask`` tells which positions are repeats.

The article this series revisits padded a short clip with its own last frames, in
a loop that never ended for clips shorter than half the target; ``loop_pad`` is that
idea repaired: it terminates for every clip length >= 1 and every ``length`` >= 1.
An empty clip is an error for every strategy (there is nothing to show or repeat).
"""

from __future__ import annotations

import operator
from typing import Literal

import numpy as np

Strategy = Literal["zero_pad", "loop", "truncate", "uniform"]

#: The strategies ``make_fixed_length`` accepts.
STRATEGIES: tuple[str, ...] = ("zero_pad", "loop", "truncate", "uniform")


def _check_sizes(n: int, length: int) -> tuple[int, int]:
    try:
        n, length = operator.index(n), operator.index(length)
    except TypeError as err:
        raise TypeError(f"clip length and target length must be integers, got {n!r} and {length!r}") from err
    if length < 1:
        raise ValueError(f"target length must be at least 1, got {length}")
    if n < 1:
        raise ValueError(f"empty clip: it has no frames to make a sequence of length {length} from")
    return n, length


def fixed_length_indices(n: int, length: int, strategy: Strategy = "zero_pad") -> np.ndarray:
    """For a clip of ``n`` frames, the input frame shown at each of ``length`` positions.

    Returns an int64 array of shape ``(length,)``; ``-1`` marks padding. Real indices
    always increase, except with ``loop``, where they restart at 0 after frame ``n - 1``.
    Raises ValueError for ``n < 1``, ``length < 1`` or an unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    n, length = _check_sizes(n, length)
    pos = np.arange(length, dtype=np.int64)
    if strategy == "loop":
        return pos % n
    if strategy == "uniform" and n > length:
        # The middle frame of each of `length` equal slices of the clip: distinct, increasing.
        return ((2 * pos + 1) * n) // (2 * length)
    return np.where(pos < n, pos, -1)


def repeat_mask(indices: np.ndarray) -> np.ndarray:
    """True at positions showing an input frame already shown earlier (``loop`` repeats).

    ``indices`` is the output of ``fixed_length_indices``; padding (-1) is never a repeat.
    """
    indices = np.asarray(indices)
    seen: set[int] = set()
    out = np.zeros(indices.shape, dtype=bool)
    for i, idx in enumerate(indices.tolist()):
        if idx >= 0:
            out[i] = idx in seen
            seen.add(idx)
    return out


def take_frames(frames: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gather ``frames[indices]`` with zeros where ``indices`` is -1; returns (sequence, mask)."""
    frames = np.asarray(frames)
    indices = np.asarray(indices, dtype=np.int64)
    if frames.ndim < 1:
        raise ValueError("frames must be an array with the frame axis first")
    if indices.size and indices.max() >= len(frames):
        raise IndexError(f"index {int(indices.max())} out of range for a clip of {len(frames)} frames")
    mask = indices >= 0
    sequence = np.zeros((len(indices),) + frames.shape[1:], dtype=frames.dtype)
    sequence[mask] = frames[indices[mask]]
    return sequence, mask


def make_fixed_length(frames: np.ndarray, length: int, strategy: Strategy = "zero_pad") -> tuple[np.ndarray, np.ndarray]:
    """Make ``frames`` (frame axis first, any trailing shape and dtype) exactly ``length`` long.

    Returns ``(sequence, mask)``; see the module docstring for the strategies.
    """
    frames = np.asarray(frames)
    if frames.ndim < 1:
        raise ValueError("frames must be an array with the frame axis first")
    return take_frames(frames, fixed_length_indices(len(frames), length, strategy))


def zero_pad(frames: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``length`` frames; a shorter clip is followed by zero frames (mask False)."""
    return make_fixed_length(frames, length, "zero_pad")


def truncate(frames: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Same as ``zero_pad``: the first ``length`` frames, zero-padded at the end if fewer."""
    return make_fixed_length(frames, length, "truncate")


def uniform_sample(frames: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``length`` frames spread evenly over a longer clip; a shorter one is kept whole and zero-padded."""
    return make_fixed_length(frames, length, "uniform")


def loop_pad(frames: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeat the clip from its start until it is ``length`` long (truncate a longer clip).

    Every position holds a real frame, so the mask is all True; use
    ``repeat_mask(fixed_length_indices(len(frames), length, "loop"))`` to find the repeats.
    """
    return make_fixed_length(frames, length, "loop")
