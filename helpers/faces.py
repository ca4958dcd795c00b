"""Detect, trim and crop faces: video -> ``FaceSequence`` of 48x48 grayscale crops.

``video_to_faces(path)`` does the whole step; the smaller functions are public so the
notebooks can show each stage (and draw the boxes):

1. ``helpers.video.read_uniform_frames``: ``num_frames`` grayscale frames spread over the clip.
2. ``detect_faces``: OpenCV's frontal-face Haar cascade on a frame shrunk to
   ``DETECT_WIDTH`` pixels wide; boxes mapped back to full-frame pixels.
3. ``largest_box``: keep the largest face (the speaker, nearest the camera);
   ``find_face`` does 2-3, looking again with a finer pyramid only if nothing was found.
4. ``fill_missing_boxes``: frames without a detection borrow the nearest detected box.
5. ``trim_box`` + ``crop_face``: trim the box margins as the original article does, then
   crop and resize to ``size`` x ``size``.

Compared with the article (every frame, full-resolution Haar), detecting only the
sampled frames at reduced resolution is over 15x faster; see ``benchmarks/bench_faces.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from helpers.video import read_uniform_frames

#: Width (pixels) frames are shrunk to before detection; narrower frames are not enlarged.
#: 640 keeps an 80 px face of a 1280x720 clip at 40 px, well above the cascade's 24 px
#: window. Measured on the benchmark clip, 480 px missed 4% of faces (mostly 80-90 px ones)
#: for little saving: the cascade's cost is set mostly by the smallest face searched for.
DETECT_WIDTH = 640
#: Image-pyramid step of the first, fast look. Standard Haar settings (not tuned to the
#: synthetic photo, so they carry over to real faces); 1.2 costs about 60% of 1.1.
SCALE_FACTOR = 1.2
#: Finer step of the second look, made only on frames where the first found nothing.
RETRY_SCALE_FACTOR = 1.1
#: Overlapping windows that must agree on a face; 5 rather than the article's 6 because a
#: shrunk frame offers fewer windows per face.
MIN_NEIGHBORS = 5
#: Smallest face searched for, as a fraction of the frame's shorter side: the article's
#: 48 px on 720p clips; never below the cascade's 24 px window at detection scale.
MIN_FACE_FRACTION = 1 / 15
#: Margins trimmed from a detected box before cropping, as in the article: Haar boxes
#: include some background at the sides and forehead above the face.
TRIM_SIDES = 0.075  # of the box width, from the left and from the right
TRIM_TOP = 0.05  # of the box height, from the top

_CASCADE_FILE = "haarcascade_frontalface_default.xml"
_CASCADE_WINDOW = 24  # the frontal-face cascade's training window, pixels


@dataclass
class FaceSequence:
    """Face crops of one clip, one row per sampled frame."""

    #: uint8 [n, size, size] grayscale face crops.
    faces: np.ndarray
    #: bool [n]: True only where that frame had a detection (others were filled, see ``fill_missing_boxes``).
    found: np.ndarray
    #: float [n, 4] x, y, w, h in original-frame pixels: the (untrimmed) detection box used for
    #: each crop; the crop itself is ``trim_box`` of it.
    boxes: np.ndarray
    #: int [n]: which frame of the clip each row came from.
    frame_indices: np.ndarray
    #: Frame rate of the clip (``helpers.video.DEFAULT_FPS`` if its header had none).
    fps: float

    def __len__(self) -> int:
        return len(self.faces)


@lru_cache(maxsize=1)
def load_face_cascade() -> cv2.CascadeClassifier:
    """OpenCV's bundled frontal-face Haar cascade, loaded once per process."""
    data = getattr(cv2, "data", None)
    if data is None or not hasattr(cv2, "CascadeClassifier"):
        # opencv-python 5.x wheels ship neither the Haar cascades nor CascadeClassifier.
        raise ImportError(
            f"this OpenCV ({cv2.__version__}) has no Haar cascades; install a 4.x wheel: "
            'pip install "opencv-python-headless>=4.10,<5"'
        )
    path = Path(data.haarcascades) / _CASCADE_FILE
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise OSError(f"could not load the Haar cascade {path}; reinstall opencv-python-headless>=4.10,<5")
    return cascade


def detect_faces(
    gray: np.ndarray,
    detect_width: int = DETECT_WIDTH,
    scale_factor: float = SCALE_FACTOR,
    min_neighbors: int = MIN_NEIGHBORS,
    min_face_fraction: float = MIN_FACE_FRACTION,
) -> np.ndarray:
    """All frontal faces in a grayscale frame: float [k, 4] x, y, w, h in the frame's own pixels.

    Detects on a copy shrunk to ``detect_width`` (never enlarged), then scales the boxes back.
    """
    if gray.ndim != 2:
        raise ValueError(f"detect_faces wants a 2-D grayscale frame, got shape {gray.shape}")
    height, width = gray.shape
    small = gray
    if width > detect_width:
        # INTER_AREA averages pixels, so the small frame keeps the face's detail without aliasing.
        small = cv2.resize(gray, (detect_width, max(1, round(height * detect_width / width))), interpolation=cv2.INTER_AREA)
    sx, sy = width / small.shape[1], height / small.shape[0]
    min_side = max(_CASCADE_WINDOW, round(min_face_fraction * min(small.shape)))
    found = load_face_cascade().detectMultiScale(
        small, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_side, min_side)
    )
    if len(found) == 0:
        return np.zeros((0, 4), np.float64)
    return np.asarray(found, np.float64) * (sx, sy, sx, sy)


def largest_box(boxes: np.ndarray) -> np.ndarray | None:
    """The box with the largest area (the face nearest the camera), or None when there is none."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    return boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))]


def find_face(gray: np.ndarray) -> np.ndarray | None:
    """The largest face in a grayscale frame (x, y, w, h in frame pixels), or None.

    Looks with the coarse pyramid step ``SCALE_FACTOR`` first and, only when that finds
    nothing, again with the finer ``RETRY_SCALE_FACTOR``: hard frames (small or blurred
    faces) cost more, the rest do not.
    """
    box = largest_box(detect_faces(gray))
    if box is None:
        box = largest_box(detect_faces(gray, scale_factor=RETRY_SCALE_FACTOR))
    return box


def trim_box(box, sides: float = TRIM_SIDES, top: float = TRIM_TOP) -> np.ndarray:
    """Trim a detection box as the article does: ``sides`` of its width from each side, ``top`` of its height from the top."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x + sides * w, y + top * h, w * (1 - 2 * sides), h * (1 - top)])


def crop_face(gray: np.ndarray, box, size: int = 48) -> np.ndarray:
    """Crop ``box`` (x, y, w, h, clipped to the frame) out of ``gray`` and resize to uint8 [size, size]."""
    height, width = gray.shape[:2]
    x, y, w, h = (float(v) for v in box)
    x0, y0 = min(max(int(round(x)), 0), width - 1), min(max(int(round(y)), 0), height - 1)
    x1, y1 = max(min(int(round(x + w)), width), x0 + 1), max(min(int(round(y + h)), height), y0 + 1)
    patch = gray[y0:y1, x0:x1]
    # INTER_AREA averages pixels when shrinking (no aliasing); linear when enlarging.
    interp = cv2.INTER_AREA if patch.shape[0] >= size and patch.shape[1] >= size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def fill_missing_boxes(boxes: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Give every row with ``found`` False the box of the nearest found row.

    "Nearest" counts rows (sampled positions), not frame numbers; a tie goes to the
    earlier row. Rows stay NaN if no row was found. Returns a new float [n, 4] array.
    """
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    found = np.asarray(found, bool)
    hits = np.flatnonzero(found)
    if len(hits) == 0:
        return boxes
    for i in np.flatnonzero(~found):
        distance = np.abs(hits - i)
        boxes[i] = boxes[hits[int(np.argmin(distance))]]  # argmin takes the first minimum: the earlier row
    return boxes


def fallback_box(width: int, height: int) -> np.ndarray:
    """Box used when no frame of a clip has a face: the centred square with side the frame's shorter side."""
    side = min(width, height)
    return np.array([(width - side) / 2, (height - side) / 2, side, side], np.float64)


def frames_to_faces(frames: np.ndarray, frame_indices, fps: float, size: int = 48) -> FaceSequence:
    """Detect, fill, trim and crop faces in grayscale frames [n, h, w] (see ``video_to_faces``)."""
    n = len(frames)
    boxes = np.full((n, 4), np.nan)
    found = np.zeros(n, bool)
    for i, frame in enumerate(frames):
        box = find_face(frame)
        if box is not None:
            boxes[i], found[i] = box, True
    if found.any():
        boxes = fill_missing_boxes(boxes, found)
    elif n:
        # No face anywhere: crop a fixed region so shapes stay right; ``found`` says the crops are not faces.
        boxes[:] = fallback_box(frames.shape[2], frames.shape[1])
    faces = np.zeros((n, size, size), np.uint8)
    for i, frame in enumerate(frames):
        faces[i] = crop_face(frame, trim_box(boxes[i]), size)
    return FaceSequence(faces, found, boxes, np.asarray(frame_indices, np.int64), float(fps))


def video_to_faces(path: str | Path, num_frames: int = 32, size: int = 48) -> FaceSequence:
    """Face crops of ``num_frames`` frames sampled uniformly over the clip at ``path``.

    Clips with fewer frames give each frame once (fewer rows). Each sampled frame keeps its
    largest detected face; frames with none are filled from the nearest detected frame
    (``fill_missing_boxes``) and have ``found`` False. If no frame has a face, ``found`` is
    all False and the crops come from ``fallback_box`` (the centred square). Unreadable
    files raise ``helpers.video.VideoReadError`` naming the file.
    """
    frames, indices, info = read_uniform_frames(path, num_frames, grayscale=True)
    return frames_to_faces(frames, indices, info.fps, size)
