"""Tests for helpers.faces: detection, following, interpolation, trimming, cropping and video_to_faces.

Real faces: matplotlib's ``grace_hopper.jpg`` and scikit-image's ``astronaut.png`` (both public
domain, see ``helpers.synthetic``), moved, scaled and rolled at test time; nothing is committed.
"""

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
    HaarDetector,
    crop_face,
    detect_faces,
    fallback_box,
    fill_missing_boxes,
    find_face,
    follow_face,
    frames_to_faces,
    interpolate_boxes,
    largest_box,
    pick_followed,
    search,
    smooth_boxes,
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


def test_find_face_retries_small_faces_at_a_finer_resolution():
    # A 42 px face in 720p is 21 px at DETECT_WIDTH, below the cascade's 24 px window.
    background = synthetic.gradient_background(720, 1280, np.random.default_rng(4))
    frame, truth = synthetic.place_face(background, (500, 400), 42, photo=synthetic.load_astronaut_photo())
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert not any(synthetic.box_iou(b, truth) >= 0.5 for b in detect_faces(gray))
    box = find_face(gray)
    assert box is not None and synthetic.box_iou(box, truth) >= 0.5


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
    assert seq.usable.shape == (8,) and seq.usable.dtype == bool and seq.usable.all()
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
    assert not seq.found.any() and not seq.usable.any()
    np.testing.assert_array_equal(seq.boxes, np.tile(fallback_box(W, H), (6, 1)))


def test_short_absence_is_interpolated_in_a_video(tmp_path):
    present = [True] * 4 + [False] * 3 + [True] * 5  # 0.2 s missing at 15 fps: bridged
    path = tmp_path / "gap.mp4"
    truth = write_face_clip(path, len(present), present=present)
    seq = video_to_faces(path, num_frames=len(present))  # every frame
    assert seq.found.tolist() == present  # the detector fired only where the face was drawn
    assert seq.usable.all()
    assert_boxes_match(seq, truth, rows=np.flatnonzero(present))
    t = (np.arange(4, 7) - 3) / 4  # rows 4-6 lie 1/4, 2/4, 3/4 of the way from row 3 to row 7
    np.testing.assert_allclose(seq.boxes[4:7], seq.boxes[3] * (1 - t[:, None]) + seq.boxes[7] * t[:, None])


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


# --- following real faces on 720p frames (in memory: frames_to_faces) -------------------

PHOTOS = {"hopper": synthetic.load_face_photo, "astronaut": synthetic.load_astronaut_photo}
HD = (720, 1280)


def scene(rows, size=HD, seed=5):
    """Grayscale frames [n, h, w] from ``rows``: per row a list of (photo name, centre, width, roll).

    Returns the frames and the true boxes [n, k, 4] of the k faces listed per row (NaN where a row
    lists fewer).
    """
    background = synthetic.gradient_background(*size, np.random.default_rng(seed))
    k = max(len(r) for r in rows)
    truth = np.full((len(rows), k, 4), np.nan)
    frames = []
    for i, row in enumerate(rows):
        frame = background
        for j, (photo, center, width, angle) in enumerate(row):
            frame, truth[i, j] = synthetic.place_face(frame, center, width, angle, photo=PHOTOS[photo]())
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    return np.stack(frames), truth


def ious(boxes, truth) -> np.ndarray:
    return np.array([0.0 if np.isnan(t).any() else synthetic.box_iou(b, t) for b, t in zip(boxes, truth)])


def test_search_finds_a_rolled_face_on_the_rotated_frame_and_maps_it_back():
    frames, truth = scene([[("astronaut", (800, 300), 120, 30)]])
    gray, true_box = frames[0], truth[0, 0]
    detector = HaarDetector()
    upright = search(detector, gray, None, 0.5, 0.0, 40)
    assert not (ious(upright, [true_box] * len(upright)) >= 0.5).any()  # why rolls are needed
    # The frame is turned by -30 degrees (clockwise), which sets the face upright.
    found = search(detector, gray, None, 0.5, -30.0, 40)
    assert len(found) and ious(found, [true_box] * len(found)).max() >= 0.7


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("width", [40, 65, 120, 200])
def test_faces_40_to_200_px_in_720p(photo, width):
    rows = [[(photo, (500 + 0.3 * width * i, 380 - 0.1 * width * i), width * (1 + 0.03 * i), 4 * (-1) ** i)]
            for i in range(6)]
    frames, truth = scene(rows)
    seq = frames_to_faces(frames, np.arange(6) * 15, 30.0)
    right = ious(seq.boxes, truth[:, 0]) >= 0.5
    assert seq.usable.all() and right.all(), (seq.found, right)
    assert seq.found.sum() >= 5


@pytest.mark.parametrize("photo", PHOTOS)
def test_heads_rolled_up_to_30_degrees_are_followed(photo):
    angles = 30 * np.sin(np.arange(12) * np.pi / 6)  # 0, 15, 26, 30, 26, 15, 0, -15, ... -30
    rows = [[(photo, (600 + 15 * i, 360), 110, a)] for i, a in enumerate(angles)]
    frames, truth = scene(rows)
    seq = frames_to_faces(frames, np.arange(12) * 15, 30.0)
    right = ious(seq.boxes, truth[:, 0]) >= 0.5
    assert seq.usable.all() and right.all(), (seq.found, right)
    assert seq.found.sum() >= 11, seq.found


def test_person_who_leaves_is_not_bridged():
    # Sampled every 0.5 s; the face is gone for rows 5-10 (3 s, longer than MAX_GAP_SECONDS).
    present = np.array([True] * 5 + [False] * 6 + [True] * 5)
    rows = [[("hopper", (500 + 10 * i, 360), 90, 0)] if p else [] for i, p in enumerate(present)]
    frames, truth = scene(rows)
    times = np.arange(16) * 0.5
    seq = frames_to_faces(frames, (times * 30).astype(int), 30.0)
    assert seq.found.tolist() == present.tolist()
    assert seq.usable.tolist() == present.tolist()  # nothing bridged, nothing held inside the clip
    assert (ious(seq.boxes, truth[:, 0])[present] >= 0.5).all()
    _, track = follow_face(frames, times)
    assert track[0] == track[4] != track[11] == track[15]  # the return starts a new track


def test_two_faces_the_followed_one_is_kept():
    # A (120 px) is the largest at first; while A is hidden for a frame, B (145 px) is larger
    # but not clearly (< SWITCH_RATIO), so it is not taken; afterwards A shrinks, still followed.
    a_pos, b_pos = (380, 360), (900, 360)
    rows = [[("hopper", a_pos, 120, 0), ("astronaut", b_pos, 100, 0)]] * 3
    rows += [[("astronaut", b_pos, 145, 0)]]
    rows += [[("hopper", a_pos, 100, 0), ("astronaut", b_pos, 125, 0)]] * 4
    frames, truth = scene(rows)
    seq = frames_to_faces(frames, np.arange(8) * 15, 30.0)
    assert seq.found.tolist() == [True] * 3 + [False] + [True] * 4
    assert seq.usable.all()  # row 3 interpolated between A's boxes 1 s apart
    a_truth = np.array([r[0] for r in truth])
    a_truth[3] = truth[2, 0]  # A did not move
    assert (ious(seq.boxes, a_truth) >= 0.5).all()


def test_a_clearly_larger_face_takes_over_as_a_new_track():
    rows = [[("hopper", (400, 360), 80, 0)]] * 3 + [[("astronaut", (900, 360), 140, 0)]] * 3
    frames, truth = scene(rows)
    times = np.arange(6) * 0.5
    boxes, track = follow_face(frames, times)
    assert (track >= 0).all() and track[0] == track[2] != track[3] == track[5]
    assert (ious(boxes, truth[:, 0]) >= 0.5).all()


# --- interpolation rules ----------------------------------------------------------------


def test_interpolate_boxes_rules():
    times = np.arange(10) * 0.5
    boxes = np.full((10, 4), np.nan)
    track = np.full(10, -1)
    boxes[[1, 3, 8]] = [[10, 10, 20, 20], [30, 10, 20, 20], [90, 10, 20, 20]]
    track[[1, 3, 8]] = [0, 0, 0]
    filled, usable = interpolate_boxes(boxes, track, times)
    np.testing.assert_allclose(filled[2], [20, 10, 20, 20])  # halfway in time between rows 1 and 3
    # Row 0 is 0.5 s before the first detection: held. Rows 4-7 lie in a 2.5 s gap: not bridged.
    # Row 9 is 0.5 s after the last: held.
    assert usable.tolist() == [True, True, True, True, False, False, False, False, True, True]
    np.testing.assert_array_equal(filled[0], boxes[1])
    np.testing.assert_array_equal(filled[9], boxes[8])
    assert np.isnan(filled[4:8]).all()


def test_smooth_boxes_keeps_steady_motion_and_averages_jitter():
    n = 20
    centre = np.c_[100 + 3.0 * np.arange(n), 80 + np.zeros(n)]
    width = 60 * 1.02 ** np.arange(n)  # a zoom
    truth = np.c_[centre - width[:, None] / 2, width, width]
    track = np.zeros(n, int)
    # Steady motion and zoom (nearly linear): unchanged, within a pixel.
    np.testing.assert_allclose(smooth_boxes(truth, track), truth, atol=1.0)
    # Detector jitter (size on a 15 % grid, centre +-1.5 px): averaged toward the truth.
    rng = np.random.default_rng(0)
    w = width * 1.15 ** rng.integers(-1, 2, n)
    c = centre + rng.uniform(-1.5, 1.5, (n, 2))
    jittered = np.c_[c - w[:, None] / 2, w, w]
    smoothed = smooth_boxes(jittered, track)

    def step_change(b):  # mean change of the width from one row to the next, relative
        return np.abs(np.diff(b[:, 2]) / b[:-1, 2]).mean()

    assert step_change(smoothed) < 0.5 * step_change(jittered)
    assert np.abs(smoothed[2:-2] - truth[2:-2]).mean() < np.abs(jittered[2:-2] - truth[2:-2]).mean()
    np.testing.assert_array_equal(smooth_boxes(jittered, track, rows=0), jittered)


def test_smooth_boxes_never_mixes_tracks_or_fills_misses():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 10, 10], [np.nan] * 4, [50, 0, 30, 30], [60, 0, 30, 30], [70, 0, 30, 30]])
    track = np.array([0, 0, -1, 1, 1, 1])
    out = smooth_boxes(boxes, track, rows=2)
    np.testing.assert_array_equal(out[[0, 1, 3, 5]], boxes[[0, 1, 3, 5]])  # track ends: nothing either side
    np.testing.assert_allclose(out[4], boxes[4])  # the mean of 50, 60, 70 is 60
    assert np.isnan(out[2]).all()


def test_interpolate_boxes_never_joins_two_tracks():
    times = np.arange(4) * 0.5
    boxes = np.array([[0, 0, 10, 10], [np.nan] * 4, [50, 0, 30, 30], [60, 0, 30, 30]])
    filled, usable = interpolate_boxes(boxes, np.array([0, -1, 1, 1]), times)
    assert usable.tolist() == [True, False, True, True]


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(-1, 2), min_size=1, max_size=30), st.floats(0.1, 1.0))
def test_interpolate_boxes_property(track_list, step):
    track = np.array(track_list)
    times = np.arange(len(track)) * step
    boxes = np.where((track >= 0)[:, None], np.arange(len(track))[:, None] * [1.0, 0, 0, 0] + [0, 0, 5, 5], np.nan)
    filled, usable = interpolate_boxes(boxes, track, times)
    hits = np.flatnonzero(track >= 0)
    assert (usable[hits]).all() and not np.isnan(filled[usable]).any()
    for i in np.flatnonzero(usable & (track < 0)):
        before, after = hits[hits < i], hits[hits > i]
        bridged = len(before) and len(after) and track[before[-1]] == track[after[0]] \
            and times[after[0]] - times[before[-1]] <= faces.MAX_GAP_SECONDS
        held = (not len(before) and times[after[0]] - times[i] <= faces.MAX_EXTRAPOLATE_SECONDS) or \
            (not len(after) and times[i] - times[before[-1]] <= faces.MAX_EXTRAPOLATE_SECONDS)
        assert bridged or held
    if not len(hits):
        assert not usable.any()


def test_pick_followed_rule():
    last = np.array([100, 100, 50, 50.0])
    near_same = [110, 105, 55, 55]
    stranger_same_size = [400, 100, 60, 60]
    assert pick_followed(np.array([stranger_same_size, near_same]), last).tolist() == near_same
    assert pick_followed(np.array([stranger_same_size]), last) is None  # not clearly larger
    assert pick_followed(np.array([[400, 100, 75, 75]]), last).tolist() == [400, 100, 75, 75]  # 1.5x
    assert pick_followed(np.array([stranger_same_size, near_same]), None).tolist() == stranger_same_size


# --- the detector seam and the budget ----------------------------------------------------


def test_haar_detector_identity_and_region():
    detector = HaarDetector()
    assert detector.name and detector.settings["scale_factor"] == faces.SCALE_FACTOR
    frames, truth = scene([[("hopper", (900, 300), 100, 0)]])
    around = search(detector, frames[0], region=(800, 200, 200, 200), scale=0.6, min_size=60)
    assert len(around) == 1 and synthetic.box_iou(around[0], truth[0, 0]) >= 0.6  # frame pixels
    assert len(detector(frames[0], region=(0, 0, 400, 400))) == 0


class CountingDetector:
    """A stand-in detector: finds nothing, counts calls and the widths it was given."""

    name = "counting"
    settings: dict = {}
    window = 24

    def __init__(self):
        self.widths = []

    def __call__(self, gray, region=None, min_size=None, max_size=None, scale_factor=None):
        self.widths.append(gray.shape[1])
        return np.zeros((0, 4))


def test_retries_stay_within_the_clip_budget():
    frames = np.zeros((12,) + HD, np.uint8)
    detector = CountingDetector()
    seq = frames_to_faces(frames, np.arange(12), 30.0, detector=detector)
    assert not seq.found.any() and not seq.usable.any()
    finer = sum(w > faces.DETECT_WIDTH for w in detector.widths)
    assert finer == faces.FULL_FRAME_RETRIES  # retries at the finer resolution, then no more
    assert len(detector.widths) == 12 + faces.FULL_FRAME_RETRIES + faces.ROLLED_RETRIES


def test_video_to_faces_uses_the_given_detector(tmp_path):
    path = tmp_path / "clip.mp4"
    write_face_clip(path, 6)

    class Fixed(CountingDetector):
        def __call__(self, gray, region=None, min_size=None, max_size=None, scale_factor=None):
            super().__call__(gray)
            return np.array([[10.0, 20.0, 60.0, 60.0]])

    detector = Fixed()
    seq = video_to_faces(path, num_frames=3, detector=detector)
    assert detector.widths and seq.found.all()
    np.testing.assert_allclose(seq.boxes[0], [10, 20, 60, 60])  # W = 320 <= DETECT_WIDTH: no scaling


# --- registered detectors: prepare, train and predict with any of them ---------------------


def test_every_registered_detector_finds_the_face_and_is_rebuilt_from_its_record():
    frames, truth = scene([[("hopper", (640, 360), 120, 0)]])
    assert faces.DEFAULT_DETECTOR in faces.DETECTORS and len(faces.DETECTORS) >= 2
    for name in faces.DETECTORS:
        detector = faces.build_detector(name)
        assert detector.name == name
        assert faces.detector_from_record(faces.detector_record(detector)) == detector
        box = find_face(frames[0], detector)
        assert box is not None and synthetic.box_iou(box, truth[0, 0]) >= 0.5, name


@pytest.mark.parametrize("record", [{"name": "haar"}, {"name": "some-cnn", "settings": {}}])
def test_unknown_detector_name_lists_the_registered_ones(record):
    with pytest.raises(ValueError, match=re.escape(record["name"])) as err:
        faces.detector_from_record(record)
    assert all(name in str(err.value) for name in faces.DETECTORS)


@pytest.mark.parametrize("settings", [{"cascade": "haarcascade_frontalface_default.xml"},  # not what the name says
                                      {"cascade": "../haarcascade_frontalface_alt2.xml"}, {"min_neighbors": "many"},
                                      {"colour": True}])
def test_a_record_with_settings_its_detector_does_not_take_is_refused(settings):
    with pytest.raises(ValueError, match="haar-frontalface-alt2"):
        faces.detector_from_record({"name": "haar-frontalface-alt2", "settings": settings})


def test_prepare_command_line_records_the_chosen_detector(tmp_path, capsys):
    from helpers.__main__ import main
    from helpers.cache import read_manifest
    from tests.test_prepare import annotation_bytes, write_clip

    src = tmp_path / "src"
    write_clip(src / "abc.001.mp4", 1)
    (src / "annotation_training.pkl").write_bytes(annotation_bytes({"abc.001.mp4": 0.5}))
    second = list(faces.DETECTORS)[1]
    assert main(["prepare", str(src), "--out", str(tmp_path / "cache"), "--workers", "1", "--num-frames", "4",
                 "--detector", second]) == 0
    manifest = read_manifest(tmp_path / "cache")
    assert manifest["settings"]["detector"] == faces.detector_record(faces.build_detector(second))
    assert manifest["clips"]["abc.001.mp4"]["status"] == "prepared"  # the second cascade found the face
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", str(src), "--out", str(tmp_path / "other"), "--detector", "haar"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "haar" in err and all(name in err for name in faces.DETECTORS)


def test_a_run_on_a_cache_of_the_second_detector_trains_and_predict_uses_that_detector(tmp_path, monkeypatch,
                                                                                        capsys):
    import json

    from helpers import training
    from helpers.__main__ import main
    from tests.test_predict import face_clip
    from tests.test_training import TINY, make_cache

    second = faces.build_detector(list(faces.DETECTORS)[1])
    cache = make_cache(tmp_path)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["settings"]["detector"] = faces.detector_record(second)
    (cache / "manifest.json").write_text(json.dumps(manifest))
    training.train(cache, tmp_path / "run", epochs=1, batch_size=4, seed=0, model_kwargs=TINY)

    used = []
    real = faces.video_to_faces

    def spy(path, num_frames=32, size=48, detector=None):
        used.append(detector)
        return real(path, num_frames, size, detector)

    monkeypatch.setattr(faces, "video_to_faces", spy)
    clip = face_clip(tmp_path / "alice.000.mp4")
    assert main(["predict", str(clip), "--model", str(tmp_path / "run"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["status"] == "scored" and row["usable_frames"] > 0
    assert used == [second]


# --- false alarms on faceless clips -------------------------------------------------------


def test_faceless_scenes_give_almost_no_usable_frames():
    """Detector false alarms on windows and textures are not followed into usable frames
    (before tracks were confirmed by a second cascade, one 320x240 texture clip here was usable
    in all 32 frames)."""
    from benchmarks.bench_faces import faceless_rates

    rates = faceless_rates(seeds=3, sizes=((240, 320),))
    sampled, found, usable = np.sum(list(rates.values()), axis=0)
    assert sampled == 4 * 3 * 32 and usable <= 0.01 * sampled, rates


def test_unconfirmed_tracks_are_dropped_and_confirmed_ones_kept():
    frames, truth = scene([[("hopper", (640, 360), 120, 0)]] * 2)
    boxes, track = follow_face(frames, np.array([0.0, 0.5]))
    assert (faces.confirm_tracks(frames, boxes, track) == track).all() and (track >= 0).all()
    blank = np.full_like(frames, 128)  # the same boxes on frames without a face: not confirmed
    assert (faces.confirm_tracks(blank, boxes, track) == -1).all()
    assert (faces.confirm_tracks(blank, boxes, track, CountingDetector()) == track).all()  # nothing to confirm with
