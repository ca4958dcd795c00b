"""Tests for helpers.faces: detection, trimming, cropping, filling and video_to_faces."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import faces, synthetic
from helpers.faces import (
    FaceSequence,
    crop_face,
    detect_faces,
    fallback_box,
    fill_missing_boxes,
    largest_box,
    trim_box,
    video_to_faces,
)
from helpers.video import VideoReadError, uniform_frame_indices

H, W = 240, 320  # a small demo-clip frame


def write_face_clip(
    path: Path,
    n: int,
    *,
    present=None,
    face_width: float = 90,
    size: tuple[int, int] = (H, W),
    fps: float = 15.0,
    gray: bool = False,
) -> np.ndarray:
    """Write n frames with the face drifting about; returns true boxes [n, 4] (NaN where absent)."""
    h, w = size
    background = synthetic.gradient_background(h, w, np.random.default_rng(1))
    truth = np.full((n, 4), np.nan)

    def frames():
        for i in range(n):
            frame = background
            if present is None or present[i]:
                center = (w / 2 + 25 * np.sin(i / 4), h / 2 + 10 * np.cos(i / 5))
                frame, truth[i] = synthetic.place_face(background, center, face_width)
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if gray else frame

    synthetic.write_video(path, frames(), fps)
    return truth


def assert_boxes_match(seq: FaceSequence, truth: np.ndarray, rows=None) -> None:
    rows = range(len(seq)) if rows is None else rows
    for i in rows:
        iou = synthetic.box_iou(seq.boxes[i], truth[seq.frame_indices[i]])
        assert iou >= 0.5, f"row {i}: IoU {iou:.2f}"


# --- small pieces ---------------------------------------------------------------------


def test_trim_box_matches_article_margins():
    np.testing.assert_allclose(trim_box((100, 50, 200, 100)), [115, 55, 170, 95])


def test_largest_box():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 30, 20], [1, 1, 20, 20]], float)
    np.testing.assert_array_equal(largest_box(boxes), [5, 5, 30, 20])
    assert largest_box(np.zeros((0, 4))) is None


def test_crop_face_resizes_and_clips_to_frame():
    gray = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    crop = crop_face(gray, (10, 20, 40, 40), size=20)
    assert crop.shape == (20, 20) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, cv2.resize(gray[20:60, 10:50], (20, 20), interpolation=cv2.INTER_AREA))
    # A box hanging off the top-left corner is clipped to the part inside the frame.
    clipped = crop_face(gray, (-30, -10, 60, 50), size=20)
    np.testing.assert_array_equal(clipped, cv2.resize(gray[0:40, 0:30], (20, 20), interpolation=cv2.INTER_AREA))
    assert crop_face(gray, (500, 500, 10, 10), size=8).shape == (8, 8)  # wholly outside: no crash


def test_fill_missing_boxes_nearest_and_ties_go_earlier():
    boxes = np.array([[i, i, 1, 1] for i in range(7)], float)
    found = np.array([False, True, False, False, False, True, False])
    filled = fill_missing_boxes(boxes, found)
    # Sources: row 0 -> 1; 2 -> 1; 3 is 2 from both 1 and 5 -> the earlier, 1; 4 -> 5; 6 -> 5.
    assert filled[:, 0].tolist() == [1, 1, 1, 1, 5, 5, 5]
    assert boxes[0, 0] == 0  # input untouched


@settings(deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_fill_missing_boxes_property(found_list):
    found = np.array(found_list)
    boxes = np.array([[i, 0, 1, 1] for i in range(len(found))], float)  # x tells which row a box came from
    filled = fill_missing_boxes(boxes, found)
    hits = np.flatnonzero(found)
    for i, source in enumerate(filled[:, 0]):
        if not hits.size:
            assert source == i  # nothing to fill from: unchanged
            continue
        best = np.abs(hits - i).min()
        assert found[int(source)] and abs(source - i) == best
        assert source == hits[np.abs(hits - i) == best].min()  # a tie goes to the earlier row


def test_fallback_box_is_centred_square():
    np.testing.assert_array_equal(fallback_box(320, 240), [40, 0, 240, 240])


def test_detect_faces_maps_downscaled_boxes_to_full_frame():
    background = synthetic.gradient_background(720, 1280, np.random.default_rng(3))
    frame, truth = synthetic.place_face(background, (900, 300), 150)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    box = largest_box(detect_faces(gray))  # detected at DETECT_WIDTH, far below 1280
    assert faces.DETECT_WIDTH < 1280
    assert box is not None and synthetic.box_iou(box, truth) >= 0.6


def test_find_face_looks_again_with_finer_pyramid_only_on_a_miss(monkeypatch):
    steps = []

    def fake_detect(gray, scale_factor=faces.SCALE_FACTOR, **kwargs):
        steps.append(scale_factor)
        return np.zeros((0, 4)) if scale_factor == faces.SCALE_FACTOR else np.array([[1.0, 2, 3, 4]])

    monkeypatch.setattr(faces, "detect_faces", fake_detect)
    assert faces.find_face(np.zeros((50, 50), np.uint8)).tolist() == [1, 2, 3, 4]
    assert steps == [faces.SCALE_FACTOR, faces.RETRY_SCALE_FACTOR]


def test_missing_cascade_support_gives_install_hint(monkeypatch):
    faces.load_face_cascade.cache_clear()
    monkeypatch.delattr(cv2, "data", raising=False)
    try:
        with pytest.raises(ImportError, match=re.escape('pip install "opencv-python-headless>=4.10,<5"')):
            faces.load_face_cascade()
    finally:
        faces.load_face_cascade.cache_clear()


# --- video_to_faces -------------------------------------------------------------------


def test_video_to_faces_shapes_dtypes_and_boxes(tmp_path):
    path = tmp_path / "clip.mp4"
    truth = write_face_clip(path, 40, fps=15.0)
    seq = video_to_faces(path, num_frames=8, size=48)
    assert seq.faces.shape == (8, 48, 48) and seq.faces.dtype == np.uint8
    assert seq.found.shape == (8,) and seq.found.dtype == bool and seq.found.all()
    assert seq.boxes.shape == (8, 4) and seq.boxes.dtype == np.float64
    assert np.array_equal(seq.frame_indices, uniform_frame_indices(40, 8))
    assert seq.fps == pytest.approx(15.0)
    assert_boxes_match(seq, truth)
    # The crop is the trimmed box of the reported box, from that frame.
    cap = cv2.VideoCapture(str(path))
    for _ in range(int(seq.frame_indices[0]) + 1):
        frame = cap.read()[1]
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(seq.faces[0], crop_face(gray, trim_box(seq.boxes[0]), 48))


def test_video_to_faces_other_size(tmp_path):
    path = tmp_path / "clip.mp4"
    write_face_clip(path, 6)
    assert video_to_faces(path, num_frames=3, size=64).faces.shape == (3, 64, 64)


def test_short_clip_gives_every_frame_once(tmp_path):
    path = tmp_path / "short.mp4"
    truth = write_face_clip(path, 5)
    seq = video_to_faces(path)  # default num_frames=32 > 5
    assert seq.frame_indices.tolist() == [0, 1, 2, 3, 4]
    assert seq.faces.shape == (5, 48, 48) and seq.found.all()
    assert_boxes_match(seq, truth)


def test_clip_without_face(tmp_path):
    path = tmp_path / "empty room.mp4"
    write_face_clip(path, 12, present=[False] * 12)
    seq = video_to_faces(path, num_frames=6)
    assert seq.faces.shape == (6, 48, 48)
    assert not seq.found.any()
    np.testing.assert_array_equal(seq.boxes, np.tile(fallback_box(W, H), (6, 1)))


def test_face_missing_in_part_of_clip_is_filled_from_nearest(tmp_path):
    present = [True] * 3 + [False] * 5 + [True] * 4
    path = tmp_path / "gap.mp4"
    truth = write_face_clip(path, len(present), present=present)
    seq = video_to_faces(path, num_frames=len(present))  # every frame
    assert seq.found.tolist() == present
    assert_boxes_match(seq, truth, rows=np.flatnonzero(present))
    # Rows 3-4 are nearest row 2; row 5 is 3 from both row 2 and row 8 (tie -> earlier); 6-7 nearest row 8.
    for row, source in {3: 2, 4: 2, 5: 2, 6: 8, 7: 8}.items():
        np.testing.assert_array_equal(seq.boxes[row], seq.boxes[source])


def test_two_faces_keeps_the_largest(tmp_path):
    size = (360, 640)
    background = synthetic.gradient_background(*size, np.random.default_rng(2))
    frame, small = synthetic.place_face(background, (150, 180), 75)
    frame, large = synthetic.place_face(frame, (440, 180), 140)
    assert len(detect_faces(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))) == 2  # both faces are detectable
    path = tmp_path / "two.mp4"
    synthetic.write_video(path, [frame] * 4, 10)
    seq = video_to_faces(path, num_frames=4)
    assert seq.found.all()
    for box in seq.boxes:
        assert synthetic.box_iou(box, large) >= 0.5 and synthetic.box_iou(box, small) == 0


def test_grayscale_video(tmp_path):
    path = tmp_path / "gray.mp4"
    truth = write_face_clip(path, 10, gray=True)
    seq = video_to_faces(path, num_frames=5)
    assert seq.found.all() and seq.faces.shape == (5, 48, 48)
    assert_boxes_match(seq, truth)


def test_non_ascii_path_with_spaces(tmp_path):
    path = tmp_path / "vidéos d'entretien" / "clip ü 1.mp4"
    truth = write_face_clip(path, 8)
    seq = video_to_faces(path, num_frames=4)
    assert seq.found.all()
    assert_boxes_match(seq, truth)


def _empty(tmp_path):
    (path := tmp_path / "empty.mp4").write_bytes(b"")
    return path


def _text(tmp_path):
    (path := tmp_path / "readme.mp4").write_text("not a video\n" * 40)
    return path


def _directory(tmp_path):
    (path := tmp_path / "a folder.mp4").mkdir()
    return path


def _missing(tmp_path):
    return tmp_path / "missing clip.mp4"


@pytest.mark.parametrize("make", [_empty, _text, _directory, _missing], ids=lambda f: f.__name__.strip("_"))
def test_unreadable_files_raise_video_read_error(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(VideoReadError, match=re.escape(str(path))):
        video_to_faces(path)
