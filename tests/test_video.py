"""Tests for helpers.video: clip info, frame-index choice and reading chosen frames."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import synthetic, video
from helpers.video import (
    DEFAULT_FPS,
    VideoReadError,
    contiguous_frame_indices,
    open_video,
    read_frames,
    read_uniform_frames,
    read_video_info,
    uniform_frame_indices,
)

H, W = 96, 128


def clip_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """n BGR frames that differ from each other (a moving bright square on a gradient)."""
    background = synthetic.gradient_background(H, W, np.random.default_rng(seed))
    frames = []
    for i in range(n):
        frame = background.copy()
        x = (7 * i) % (W - 24)
        frame[30:54, x : x + 24] = 255 - 3 * i % 200
        frames.append(frame)
    return frames


def write_clip(path: Path, n: int, fps: float = 12.5, fourcc: str = "mp4v") -> Path:
    synthetic.write_video(path, clip_frames(n), fps, fourcc)
    return path


def read_all(path: Path, grayscale: bool = True) -> np.ndarray:
    """Reference reader: every frame, with cap.read()."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if grayscale else frame)
    cap.release()
    return np.stack(frames)


def truncated_clip(tmp_path: Path, n: int = 40) -> Path:
    """An MJPG .avi whose header says n frames but whose bytes are cut in half."""
    full = write_clip(tmp_path / "full.avi", n, fourcc="MJPG")
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return cut


class FakeHeaderCapture:
    """A real VideoCapture whose header reports the given fps and frame count."""

    real = cv2.VideoCapture

    def __init__(self, path, fps=None, frame_count=None):
        self._cap = self.real(path)
        self._fake = {cv2.CAP_PROP_FPS: fps, cv2.CAP_PROP_FRAME_COUNT: frame_count}

    def get(self, prop):
        fake = self._fake.get(prop)
        return self._cap.get(prop) if fake is None else fake

    def __getattr__(self, name):
        return getattr(self._cap, name)


def fake_header(monkeypatch, **fake):
    monkeypatch.setattr(video.cv2, "VideoCapture", lambda path: FakeHeaderCapture(path, **fake))


# --- info -----------------------------------------------------------------------------


def test_read_video_info(tmp_path):
    info = read_video_info(write_clip(tmp_path / "clip.mp4", 20, fps=12.5))
    assert (info.width, info.height, info.frame_count) == (W, H, 20)
    assert info.fps == pytest.approx(12.5)
    assert info.duration == pytest.approx(1.6)
    assert info.fps_from_header and not info.frame_count_counted


@pytest.mark.parametrize("bad_fps", [0.0, -1.0, float("nan")])
def test_unusable_fps_falls_back_to_default_with_warning(tmp_path, monkeypatch, bad_fps):
    path = write_clip(tmp_path / "clip.mp4", 10)
    fake_header(monkeypatch, fps=bad_fps)
    with pytest.warns(UserWarning, match="clip.mp4"):
        info = read_video_info(path)
    assert info.fps == DEFAULT_FPS and not info.fps_from_header


def test_frames_are_counted_when_header_has_no_count(tmp_path):
    # A raw MJPEG stream (JPEGs back to back) has no frame count; OpenCV reports -2**63.
    path = tmp_path / "raw.mjpeg"
    path.write_bytes(b"".join(cv2.imencode(".jpg", f)[1].tobytes() for f in clip_frames(17)))
    info = read_video_info(path)
    assert info.frame_count == 17 and info.frame_count_counted


def test_zero_frame_count_in_header_is_counted(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "clip.mp4", 13)
    fake_header(monkeypatch, frame_count=0.0)
    assert read_video_info(path).frame_count == 13


# --- unreadable files -----------------------------------------------------------------


def _empty(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


def _text(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    return path


def _directory(tmp_path):
    path = tmp_path / "folder.mp4"
    path.mkdir()
    return path


def _missing(tmp_path):
    return tmp_path / "nowhere" / "missing.mp4"


UNREADABLE = [_empty, _text, _directory, _missing]


@pytest.mark.parametrize("make", UNREADABLE, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("reader", [open_video, read_video_info, lambda p: read_frames(p, [0]), lambda p: read_uniform_frames(p, 4)])
def test_unreadable_file_raises_error_naming_it(tmp_path, make, reader):
    path = make(tmp_path)
    with pytest.raises(VideoReadError, match=re.escape(path.name)) as err:
        reader(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, OSError)


# --- frame indices --------------------------------------------------------------------


@settings(deadline=None, max_examples=200)
@given(n=st.integers(0, 5000), num=st.integers(0, 300))
def test_uniform_frame_indices(n, num):
    idx = uniform_frame_indices(n, num)
    assert len(idx) == min(n, num)
    assert idx.dtype == np.int64
    if len(idx) == 0:
        return
    assert np.all(np.diff(idx) > 0)  # sorted, unique
    assert idx[0] >= 0 and idx[-1] < n
    if n <= num:
        assert np.array_equal(idx, np.arange(n))  # short clip: every frame once
        return
    # Spread: gaps are floor or ceil of n/num, and the ends are no further than half a gap.
    lo, hi = n // num, -(-n // num)
    assert np.all((np.diff(idx) >= lo) & (np.diff(idx) <= hi))
    assert idx[0] <= hi // 2 and (n - 1 - idx[-1]) <= hi // 2 + 1


@given(n=st.integers(0, 1000), num=st.integers(0, 100), start=st.integers(0, 1200))
def test_contiguous_frame_indices(n, num, start):
    idx = contiguous_frame_indices(n, num, start)
    assert len(idx) == max(0, min(num, n - start))
    if len(idx):
        assert idx[0] == start and idx[-1] < n
        assert np.all(np.diff(idx) == 1)


def test_indices_reject_negative_arguments():
    with pytest.raises(ValueError):
        uniform_frame_indices(-1, 3)
    with pytest.raises(ValueError):
        contiguous_frame_indices(10, 3, start=-2)


# --- reading frames -------------------------------------------------------------------


def test_read_frames_returns_exactly_the_wanted_frames(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", 25)
    reference = read_all(path)
    frames, idx = read_frames(path, [17, 3, 0, 3, 24])
    assert idx.tolist() == [0, 3, 17, 24]  # sorted, de-duplicated
    assert frames.shape == (4, H, W) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, reference[idx])

    colour, idx = read_frames(path, [5, 6], grayscale=False)
    assert colour.shape == (2, H, W, 3)
    np.testing.assert_array_equal(colour, read_all(path, grayscale=False)[[5, 6]])


def test_read_frames_retrieves_only_wanted_frames_and_stops_after_the_last(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "clip.mp4", 30)
    calls = {"grab": 0, "retrieve": 0}

    class Counting(FakeHeaderCapture):
        def grab(self):
            calls["grab"] += 1
            return self._cap.grab()

        def retrieve(self, *args):
            calls["retrieve"] += 1
            return self._cap.retrieve(*args)

    monkeypatch.setattr(video.cv2, "VideoCapture", lambda p: Counting(p))
    read_frames(path, [2, 9, 20])
    assert calls == {"grab": 21, "retrieve": 3}


def test_read_frames_beyond_the_end_warns_and_returns_real_frames(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", 12)
    with pytest.warns(UserWarning, match="clip.mp4"):
        frames, idx = read_frames(path, [4, 11, 12, 50])
    assert idx.tolist() == [4, 11] and len(frames) == 2


def test_truncated_clip_partly_decodes_with_warning(tmp_path):
    path = truncated_clip(tmp_path, 40)
    assert read_video_info(path).frame_count == 40  # the header still claims every frame
    with pytest.warns(UserWarning, match="cut.avi"):
        frames, idx = read_frames(path, range(40))
    assert 0 < len(idx) < 40
    assert np.array_equal(idx, np.arange(len(idx)))  # only frames that really decoded
    np.testing.assert_array_equal(frames, read_all(path)[: len(idx)])


def test_read_uniform_frames_resamples_over_decoded_frames(tmp_path):
    path = truncated_clip(tmp_path, 40)
    decoded = len(read_all(path))
    with pytest.warns(UserWarning, match="cut.avi"):
        frames, idx, info = read_uniform_frames(path, 8)
    # Second pass: uniform over the frames that decode, not over the header's 40.
    assert np.array_equal(idx, uniform_frame_indices(decoded, 8))
    assert info.frame_count == decoded and len(frames) == 8


def test_read_uniform_frames_with_header_count_too_large(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "clip.mp4", 30)
    fake_header(monkeypatch, frame_count=300.0)
    with pytest.warns(UserWarning, match="only 30 of the 300"):
        frames, idx, info = read_uniform_frames(path, 6)
    assert np.array_equal(idx, uniform_frame_indices(30, 6))
    np.testing.assert_array_equal(frames, read_all(path)[idx])


def test_read_uniform_frames_short_clip_gives_every_frame_once(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", 5)
    frames, idx, info = read_uniform_frames(path, 32)
    assert idx.tolist() == [0, 1, 2, 3, 4] and frames.shape == (5, H, W)


def test_non_ascii_path_with_spaces(tmp_path):
    path = write_clip(tmp_path / "vidéos d'essai" / "clip ü 1.mp4", 8)
    assert read_video_info(path).frame_count == 8
    frames, idx, _ = read_uniform_frames(path, 4)
    assert len(idx) == 4


# --------------------------------------------------------------------------- names that are not valid UTF-8


def non_utf8_copy(clip: Path, folder: Path, name: bytes = b"caf\xe9.001.mp4") -> Path:
    """``clip`` copied to a file whose name is not valid UTF-8 (Python holds it with a lone surrogate)."""
    target = Path(os.fsdecode(os.fsencode(folder) + b"/" + name))
    target.write_bytes(clip.read_bytes())
    return target


def test_shown_escapes_only_what_cannot_be_printed():
    assert video.shown(Path("/a/Zoë clip.001.mp4")) == "/a/Zoë clip.001.mp4"
    escaped = video.shown(os.fsdecode(b"/a/caf\xe9.001.mp4"))
    assert escaped == "/a/caf\\udce9.001.mp4"
    escaped.encode("utf-8")  # printable anywhere


def test_a_name_that_is_not_utf8_is_read_through_a_link(tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "plain.mp4", 20)
    odd_dir = Path(os.fsdecode(os.fsencode(tmp_path) + b"/d\xff"))
    odd_dir.mkdir()
    odd = non_utf8_copy(clip, odd_dir)
    monkeypatch.setattr(video.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    links: list[bytes] = []
    real_symlink = os.symlink
    monkeypatch.setattr(video.os, "symlink", lambda src, dst: (links.append(dst), real_symlink(src, dst)))
    with pytest.raises(UnicodeEncodeError):
        str(odd).encode("utf-8")  # the string OpenCV must never see
    frames, indices, info = read_uniform_frames(odd, 5)
    want, want_indices, want_info = read_uniform_frames(clip, 5)
    np.testing.assert_array_equal(frames, want)
    np.testing.assert_array_equal(indices, want_indices)
    assert info.frame_count == want_info.frame_count and info.path == odd
    assert links and all(os.fsdecode(link).isascii() and os.fsdecode(link).startswith(str(tmp_path / "tmp"))
                         for link in links)
    assert list((tmp_path / "tmp").iterdir()) == []  # the link and its folder are gone


def test_a_name_that_is_not_utf8_and_cannot_be_linked_is_named_printably(tmp_path, monkeypatch):
    odd = non_utf8_copy(write_clip(tmp_path / "plain.mp4", 5), tmp_path)

    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(video.os, "symlink", no_links)
    with pytest.raises(VideoReadError) as err:
        open_video(odd)
    message = str(err.value)
    message.encode("utf-8")
    assert "caf\\udce9.001.mp4" in message and "not valid UTF-8" in message and "rename it" in message


def test_errors_about_a_name_that_is_not_utf8_can_be_printed(tmp_path):
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.001.mp4"))
    odd.write_bytes(b"")
    with pytest.raises(VideoReadError) as err:
        open_video(odd)
    str(err.value).encode("utf-8")
    assert "caf\\udce9.001.mp4" in str(err.value) and "empty" in str(err.value)
