"""The synthetic 720p clip that notebooks 01 and 02 time the article's face search on."""

from __future__ import annotations

import numpy as np

from helpers import synthetic
from helpers.faces import find_face
from helpers.video import read_frames, read_video_info


def test_the_clip_has_the_asked_length_size_and_one_true_box_per_frame(tmp_path):
    path = tmp_path / "clip.mp4"
    boxes = synthetic.write_synthetic_720p_clip(path, seconds=1, fps=12)
    info = read_video_info(path)
    assert (info.width, info.height, info.frame_count) == (1280, 720, 12)
    assert round(info.fps) == 12
    assert boxes.shape == (12, 4)
    x, y, w, h = boxes.T
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= 1280).all() and (y + h <= 720).all()
    assert 130 <= w.min() and w.max() <= 210  # the face widths the notebooks print


def test_the_face_is_found_where_the_true_box_says(tmp_path):
    path = tmp_path / "clip.mp4"
    boxes = synthetic.write_synthetic_720p_clip(path, seconds=1, fps=8)
    frames, indices = read_frames(path, [0, 3, 6])
    for frame, index in zip(frames, indices):
        found = find_face(frame)
        assert found is not None, f"no face found in frame {index}"
        assert synthetic.box_iou(found, boxes[index]) >= 0.5


def test_the_face_loops_across_the_frame_once_whatever_the_length():
    for n in (60, 90):
        track = synthetic.drifting_track(n)
        xs = np.array([centre[0] for centre, _ in track])
        assert len(track) == n
        assert xs.min() < 400 and xs.max() > 880  # drifts over most of the width
        assert abs(xs[-1] - xs[0]) < 40  # and comes back: a loop, not a pass


def test_the_seed_draws_the_background_not_the_path(tmp_path):
    a = synthetic.write_synthetic_720p_clip(tmp_path / "a.mp4", seconds=1, fps=4, seed=0)
    b = synthetic.write_synthetic_720p_clip(tmp_path / "b.mp4", seconds=1, fps=4, seed=1)
    np.testing.assert_array_equal(a, b)
    first_a, _ = read_frames(tmp_path / "a.mp4", [0], grayscale=False)
    first_b, _ = read_frames(tmp_path / "b.mp4", [0], grayscale=False)
    corner = (slice(0, 100), slice(0, 100))  # far from the face
    assert np.abs(first_a[0][corner].astype(int) - first_b[0][corner].astype(int)).mean() > 5
