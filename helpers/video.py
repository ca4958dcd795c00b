"""Open a clip, read its properties and read chosen frames, in one sequential pass.

Reading a video is the slow, error-prone step of the pipeline, so this module:

- names the file in every error (``VideoReadError``) and says what to try; checks the
  common causes itself (missing, a broken link, a directory, no read permission, empty,
  not a regular file: a FIFO would block OpenCV forever) before asking OpenCV;
- never hands OpenCV a path that is not valid UTF-8 (a file name written by another system,
  ``caf\\xe9.001.mp4``, which Python holds with a lone surrogate): ``cv2.VideoCapture`` crashes
  the process on such a string, so the file is opened through an ASCII-named symbolic link
  in a private temporary folder (``shown`` writes such names printable, for messages);
- treats the container's frame count as an *estimate*: headers can be 0, unknown, too
  large (a truncated download) or too small, so the indices returned are always frames
  that really decoded, spread over the frames that really decode;
- treats a frame rate outside ``MIN_FPS``..``MAX_FPS`` as missing (``DEFAULT_FPS``, with
  a warning): a header with fps 0 often comes back from FFmpeg as a tiny positive number;
- reads only the wanted frames: ``cap.grab()`` walks every frame (it still decodes,
  codecs need the previous frames), but only the wanted ones are ``retrieve()``-d and
  converted into one preallocated array, and nothing else is kept in memory.

Typical use::

    frames, indices = read_uniform_frames("clip.mp4", 32)   # grayscale, uniform over the clip
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: Frame rate assumed when the header has none (0, negative or NaN); most webcam and
#: YouTube footage, First Impressions included, is 30 fps.
DEFAULT_FPS = 30.0
#: Header frame rates outside this range are taken as missing. A header claiming 0 fps
#: reaches OpenCV as FFmpeg's fallback, e.g. 1/1024 fps for an mp4 whose 'mdhd' time scale is 0.
#: 240 fps is the fastest that phones and action cameras record at (slow motion) and keep in the
#: header; a higher claim on a clip of people talking is a broken header. It matters because the
#: frame rate turns frame gaps into seconds: a 30 fps clip claiming 1000 fps would make a 2 s
#: absence 0.06 s, short enough to bridge (``helpers.faces.MAX_GAP_SECONDS``). Too low a rate errs
#: the safe way (gaps look longer, fewer frames are bridged).
MIN_FPS, MAX_FPS = 1.0, 240.0


class VideoReadError(OSError):
    """A clip that cannot be opened or from which no frame decodes."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip (``frame_count`` is an estimate, see below)."""

    path: Path
    fps: float
    width: int
    height: int
    #: Frames in the clip: the header's figure (which may be too large for a truncated
    #: file) or, when the header has none, counted by grabbing through the file.
    frame_count: int
    #: True when ``frame_count`` was counted by decoding, not read from the header.
    frame_count_counted: bool = False
    #: False when the header had no usable frame rate and ``DEFAULT_FPS`` was used.
    fps_from_header: bool = True

    @property
    def duration(self) -> float:
        """Length in seconds, from ``frame_count`` and ``fps``."""
        return self.frame_count / self.fps


def shown(path: str | os.PathLike) -> str:
    """``path`` as text that can be printed anywhere: as it is, or ``ascii()``-escaped when not valid UTF-8.

    A file name that is not valid UTF-8 reaches Python with lone surrogates, which a UTF-8
    terminal, a log file or ``json.dumps(ensure_ascii=False)`` cannot encode.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ascii(text)[1:-1]
    return text


def _check_openable(path: Path) -> None:
    """Raise ``VideoReadError`` for the causes OpenCV would only answer "not opened" to."""
    name = shown(path)
    if not path.exists():
        if path.is_symlink():
            raise VideoReadError(f"video file {name} is a broken symbolic link (to {shown(os.readlink(path))}); "
                                 "fix or remove the link")
        raise VideoReadError(f"video file not found: {name}; check the path and the dataset download")
    if path.is_dir():
        raise VideoReadError(f"{name} is a directory, not a video file; pass the path of one clip")
    if not path.is_file():
        # A FIFO would block OpenCV (and a whole prepare run) forever; a device never ends.
        raise VideoReadError(f"{name} is not a regular file (a FIFO, socket or device?); pass a video file")
    try:
        with open(path, "rb") as f:
            empty = not f.read(1)
    except OSError as exc:
        raise VideoReadError(f"video file {name} cannot be read ({exc.strerror or exc}); "
                             "check its permissions") from exc
    if empty:
        raise VideoReadError(f"video file {name} is empty (0 bytes); re-download the clip")


def _capture(path: Path) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` on ``path``, through an ASCII-named link when the path is not valid UTF-8.

    The link is removed as soon as the capture is open: the decoder keeps its own handle.
    """
    if shown(path) == str(path):
        return cv2.VideoCapture(str(path))
    folder = tempfile.mkdtemp(prefix="helpers-video-")
    try:
        suffix = path.suffix if shown(path.suffix) == path.suffix else ""
        alias = os.path.join(folder, "clip" + suffix)
        try:
            os.symlink(os.fsencode(path.absolute()), os.fsencode(alias))
        except OSError as exc:
            raise VideoReadError(f"video file {shown(path)} has a name that is not valid UTF-8 and no link to it "
                                 f"could be made ({exc.strerror or exc}); rename it (e.g. with ASCII letters only)"
                                 ) from exc
        return cv2.VideoCapture(alias)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def open_video(path: str | Path) -> cv2.VideoCapture:
    """Open ``path`` with OpenCV, raising ``VideoReadError`` naming the file if it cannot be."""
    path = Path(path)
    _check_openable(path)
    cap = _capture(path)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError(
            f"OpenCV could not open {shown(path)} (empty, truncated or not a video?); "
            "re-download the clip or check it plays, e.g. with ffprobe"
        )
    return cap


def _header_fps(cap: cv2.VideoCapture, path: Path) -> tuple[float, bool]:
    """The header's frame rate, or ``DEFAULT_FPS`` with a warning when it is unusable."""
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    if math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS:
        return fps, True
    why = "" if not math.isfinite(fps) else f", above {MAX_FPS:g}" if fps > MAX_FPS else f", below {MIN_FPS:g}"
    warnings.warn(f"{path} has no usable frame rate in its header ({fps:g} fps{why}); assuming {DEFAULT_FPS:g} fps",
                  stacklevel=3)
    return DEFAULT_FPS, False


def _header_frame_count(cap: cv2.VideoCapture) -> int:
    """The header's frame count, or 0 when it has none (OpenCV answers 0, -1 or -2**63)."""
    count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    return int(count) if math.isfinite(count) and count > 0 else 0


def count_frames(path: str | Path) -> int:
    """Count the frames that really decode, by grabbing through the whole file."""
    cap = open_video(path)
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def read_video_info(path: str | Path) -> VideoInfo:
    """Read fps, size and frame count; counts frames by decoding only when the header has no count."""
    path = Path(path)
    cap = open_video(path)
    try:
        fps, fps_ok = _header_fps(cap, path)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = _header_frame_count(cap)
    finally:
        cap.release()
    counted = n == 0
    if counted:
        n = count_frames(path)
        if n == 0:
            raise VideoReadError(f"no frame of {shown(path)} could be decoded; the file is empty or damaged, re-download it")
    return VideoInfo(path, fps, width, height, n, frame_count_counted=counted, fps_from_header=fps_ok)


def uniform_frame_indices(n_frames: int, num: int) -> np.ndarray:
    """``num`` frame indices spread evenly over ``n_frames`` frames: the middle of ``num`` equal parts.

    Middles rather than ``linspace(0, n - 1)`` keep away from the first and last frames,
    which are often fades. When the clip is shorter than ``num``, every frame once (fewer rows).
    Gaps between consecutive indices are ``floor(n / num)`` or ``ceil(n / num)``.
    """
    if n_frames < 0 or num < 0:
        raise ValueError(f"n_frames and num must be >= 0, got {n_frames} and {num}")
    if n_frames <= num:
        return np.arange(n_frames, dtype=np.int64)
    # Integer arithmetic: floor((2i + 1) * n / (2 * num)) is exact and strictly increasing.
    return (2 * np.arange(num, dtype=np.int64) + 1) * n_frames // (2 * num)


def contiguous_frame_indices(n_frames: int, num: int, start: int = 0) -> np.ndarray:
    """``num`` consecutive frame indices from ``start``, cut short at the end of the clip."""
    if n_frames < 0 or num < 0 or start < 0:
        raise ValueError(f"n_frames, num and start must be >= 0, got {n_frames}, {num} and {start}")
    return np.arange(start, min(start + num, n_frames), dtype=np.int64)


def _stack(frames: list[np.ndarray], grayscale: bool, width: int, height: int) -> np.ndarray:
    """Stack frames into one array; an empty (0, h, w[, 3]) array when there are none."""
    if frames:
        return np.stack(frames)
    return np.zeros((0, height, width) if grayscale else (0, height, width, 3), np.uint8)


def _converted(frame: np.ndarray, grayscale: bool) -> np.ndarray:
    """``frame`` as grayscale or as BGR, whichever the caller asked for."""
    if grayscale and frame.ndim == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if not grayscale and frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return frame


def _store(out: np.ndarray | None, frame: np.ndarray, row: int, rows: int, path: Path, index: int) -> np.ndarray:
    """Put ``frame`` in row ``row`` of ``out``, allocated (``rows`` rows) at the first frame; returns ``out``."""
    if out is None:
        out = np.empty((rows,) + frame.shape, frame.dtype)
    elif frame.shape != out.shape[1:]:
        raise VideoReadError(f"{shown(path)}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, earlier frames "
                             f"{out.shape[2]}x{out.shape[1]}; clips whose frame size changes are not supported")
    out[row] = frame
    return out


def _frames_follow(cap: cv2.VideoCapture, count: int) -> bool:
    """True when ``count`` more frames can be grabbed (decoded, never retrieved)."""
    return all(cap.grab() for _ in range(count))


def _read_pass(path: Path, wanted: np.ndarray, grayscale: bool, probe: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, int | None, bool]:
    """One sequential pass: (frames, indices read, frames decoded if decoding ended early else None, probed).

    Frames go straight into one array allocated at the first frame (never a list plus a
    stacked copy: twice the memory on 4K clips). With ``probe``, grabbing goes on (no
    retrieve) up to frame ``probe``; ``probed`` says whether that frame exists.
    """
    cap = open_video(path)
    out: np.ndarray | None = None
    got: list[int] = []
    ended_at: int | None = None
    probed = False
    try:
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        wanted_set = set(wanted.tolist())
        last = int(wanted[-1]) if len(wanted) else -1
        for index in range(last + 1):  # stop after the last wanted frame: no need to decode the rest
            if not cap.grab():
                ended_at = index
                break
            if index not in wanted_set:
                continue  # grabbed (decoded) but never retrieved or converted: the saving
            ok, frame = cap.retrieve()
            if not ok:
                ended_at = index
                break
            out = _store(out, _converted(frame, grayscale), len(got), len(wanted), path, index)
            got.append(index)
        if ended_at is None and probe is not None:
            probed = _frames_follow(cap, probe - last)
    finally:
        cap.release()
    if ended_at == 0:
        raise VideoReadError(f"no frame of {shown(path)} could be decoded; the file is empty or damaged, re-download it")
    if out is None:
        frames = _stack([], grayscale, width, height)
    else:
        frames = out if len(got) == len(out) else out[: len(got)].copy()
    return frames, np.asarray(got, dtype=np.int64), ended_at, probed


def read_frames(path: str | Path, indices, grayscale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read only the frames at ``indices`` in one pass: (frames [k, h, w] or [k, h, w, 3], indices read).

    Indices are sorted and de-duplicated. If decoding ends before some of them (a
    truncated clip), returns the frames that did decode with a warning; if no frame
    decodes at all, raises ``VideoReadError``.
    """
    path = Path(path)
    wanted = np.unique(np.asarray(indices, dtype=np.int64))
    if len(wanted) and wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {int(wanted[0])}")
    frames, got, ended_at, _ = _read_pass(path, wanted, grayscale)
    if ended_at is not None:
        warnings.warn(
            f"{shown(path)}: decoding ended after {ended_at} frames, so {len(wanted) - len(got)} of "
            f"{len(wanted)} wanted frames were not read; the clip may be truncated",
            stacklevel=2,
        )
    return frames, got


def read_uniform_frames(path: str | Path, num: int, grayscale: bool = True) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """Read ``num`` frames spread uniformly over the clip: (frames, indices, info).

    The header's frame count is trusted first (one pass). If decoding ends before it
    (a truncated file or a wrong header), some wanted frames were never reached, so the
    choice is redone over the frames that really decoded and read again (a second pass):
    a clip that decodes short still gets uniform coverage. If instead frames go on past
    the header's count by more than half a sampling step (checked in the same pass by
    grabbing a few frames more), the header is too small: the frames are counted and the
    choice redone over all of them, with a warning. ``info.frame_count`` is then corrected
    to the decoded count. Clips shorter than ``num`` give every frame once.
    """
    path = Path(path)
    info = read_video_info(path)
    n = info.frame_count
    # Grab up to frame n + slack: if it exists, the header undercounts enough to skew sampling.
    probe = None if info.frame_count_counted or num <= 0 else n + n // (2 * num)
    frames, got, ended_at, more = _read_pass(path, uniform_frame_indices(n, num), grayscale, probe)
    if ended_at is not None or more:
        decoded = ended_at if ended_at is not None else count_frames(path)
        why = (f"only {decoded} of the {n} frames in its header decode (truncated or damaged file?)"
               if ended_at is not None else f"its header says {n} frames but {decoded} decode (wrong header?)")
        warnings.warn(f"{shown(path)}: {why}; sampling uniformly over the decoded frames", stacklevel=2)
        info = VideoInfo(info.path, info.fps, info.width, info.height, decoded, True, info.fps_from_header)
        frames, got, _, _ = _read_pass(path, uniform_frame_indices(decoded, num), grayscale)
    return frames, got, info
