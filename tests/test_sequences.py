"""Property tests of helpers.sequences: fixed-length face sequences with masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.sequences import (
    STRATEGIES,
    fixed_length_indices,
    loop_pad,
    make_fixed_length,
    repeat_mask,
    take_frames,
    truncate,
    uniform_sample,
    zero_pad,
)

FUNCTIONS = {"zero_pad": zero_pad, "truncate": truncate, "uniform": uniform_sample, "loop": loop_pad}
TRAILING = [(), (3,), (4, 4), (48, 48), (6, 5, 1)]
DTYPES = [np.uint8, np.float32, np.float64, np.int16, np.bool_]

settings.register_profile("fast", max_examples=150, deadline=None)
settings.load_profile("fast")


def labelled_clip(n: int, trailing: tuple[int, ...], dtype) -> np.ndarray:
    """A clip whose frame i is filled with a value that identifies it (never 0 unless bool)."""
    values = (np.arange(n) % 200) + 1
    frames = np.broadcast_to(values.reshape((n,) + (1,) * len(trailing)), (n,) + trailing)
    return np.ascontiguousarray(frames).astype(dtype)


clip_args = st.tuples(
    st.integers(1, 70),                      # clip length
    st.integers(1, 90),                      # target length
    st.sampled_from(TRAILING),
    st.sampled_from(DTYPES),
    st.sampled_from(STRATEGIES),
)


@given(clip_args)
def test_shape_dtype_and_mask_count(args):
    n, length, trailing, dtype, strategy = args
    frames = labelled_clip(n, trailing, dtype)
    seq, mask = make_fixed_length(frames, length, strategy)
    assert seq.shape == (length,) + trailing
    assert seq.dtype == frames.dtype
    assert mask.shape == (length,) and mask.dtype == np.bool_
    expected_real = length if strategy == "loop" else min(n, length)
    assert int(mask.sum()) == expected_real
    # Padding (if any) is all at the end, and is zeros.
    assert not np.any(mask[np.argmin(mask):]) or mask.all()
    assert not np.any(seq[~mask])


@given(clip_args)
def test_real_frames_come_from_the_clip_in_order(args):
    n, length, trailing, dtype, strategy = args
    frames = labelled_clip(n, trailing, np.int64)
    idx = fixed_length_indices(n, length, strategy)
    seq, mask = make_fixed_length(frames, length, strategy)
    np.testing.assert_array_equal(mask, idx >= 0)
    for pos in np.flatnonzero(mask):
        np.testing.assert_array_equal(seq[pos], frames[idx[pos]])
    real = idx[idx >= 0]
    assert real.min() >= 0 and real.max() < n
    if strategy != "loop":
        assert np.all(np.diff(real) > 0), "real frames must be distinct and in clip order"
        if strategy in ("zero_pad", "truncate") or n <= length:
            np.testing.assert_array_equal(real, np.arange(min(n, length)))


@given(st.integers(1, 70), st.integers(1, 90), st.sampled_from(TRAILING))
def test_loop_pad_matches_a_simple_reference(n, length, trailing):
    frames = np.random.default_rng(n * 1000 + length).integers(0, 256, size=(n,) + trailing).astype(np.uint8)
    reference: list[np.ndarray] = []
    while len(reference) < length:       # terminates: every pass adds n >= 1 frames
        reference.extend(frames)
    seq, mask = loop_pad(frames, length)
    np.testing.assert_array_equal(seq, np.stack(reference[:length]))
    assert mask.all()
    repeats = repeat_mask(fixed_length_indices(n, length, "loop"))
    np.testing.assert_array_equal(repeats, np.arange(length) >= n)


@given(st.integers(1, 70), st.integers(1, 90))
def test_uniform_spreads_over_the_whole_clip(n, length):
    idx = fixed_length_indices(n, length, "uniform")
    if n <= length:
        np.testing.assert_array_equal(idx[:n], np.arange(n))
        assert np.all(idx[n:] == -1)
    else:
        # One frame in each of `length` equal slices of the clip (frame i spans [i, i+1)).
        slices = np.floor((idx + 0.5) * length / n).astype(int)
        np.testing.assert_array_equal(slices, np.arange(length))
        assert repeat_mask(idx).sum() == 0


@given(st.integers(1, 70), st.integers(1, 90), st.sampled_from(STRATEGIES))
def test_named_functions_agree_with_dispatcher(n, length, strategy):
    frames = np.random.default_rng(n).normal(size=(n, 2, 3)).astype(np.float32)
    seq, mask = FUNCTIONS[strategy](frames, length)
    seq2, mask2 = make_fixed_length(frames, length, strategy)
    np.testing.assert_array_equal(seq, seq2)
    np.testing.assert_array_equal(mask, mask2)


def test_truncate_is_zero_pad():
    frames = labelled_clip(10, (2,), np.uint8)
    for length in (4, 10, 15):
        np.testing.assert_array_equal(truncate(frames, length)[0], zero_pad(frames, length)[0])


def test_small_worked_examples():
    assert fixed_length_indices(3, 7, "loop").tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert fixed_length_indices(3, 5, "zero_pad").tolist() == [0, 1, 2, -1, -1]
    assert fixed_length_indices(10, 4, "uniform").tolist() == [1, 3, 6, 8]
    assert fixed_length_indices(10, 4, "truncate").tolist() == [0, 1, 2, 3]
    assert repeat_mask(np.array([0, 1, 0, 1, -1])).tolist() == [False, False, True, True, False]


def test_list_of_frames_is_accepted():
    frames = [np.full((4, 4), i + 1, np.uint8) for i in range(3)]
    seq, mask = zero_pad(frames, 5)
    assert seq.shape == (5, 4, 4) and seq.dtype == np.uint8
    assert mask.tolist() == [True, True, True, False, False]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_empty_clip_is_an_error(strategy):
    with pytest.raises(ValueError, match="empty clip"):
        make_fixed_length(np.zeros((0, 48, 48), np.uint8), 32, strategy)


@pytest.mark.parametrize("length", [0, -3])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_length_below_one_is_an_error(strategy, length):
    with pytest.raises(ValueError, match="at least 1"):
        make_fixed_length(np.zeros((5, 2), np.uint8), length, strategy)


def test_unknown_strategy_and_bad_inputs():
    with pytest.raises(ValueError, match="unknown strategy"):
        make_fixed_length(np.zeros((5, 2)), 4, "mirror")
    with pytest.raises(TypeError):
        fixed_length_indices(5, 4.5, "loop")
    with pytest.raises(ValueError):
        make_fixed_length(np.float32(3.0), 4)
    with pytest.raises(IndexError):
        take_frames(np.zeros((3, 2)), np.array([0, 3]))
