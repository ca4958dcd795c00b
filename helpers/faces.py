"""Detect, follow, trim and crop faces: video -> ``FaceSequence`` of 48x48 grayscale crops.

``video_to_faces(path)`` does the whole step; the smaller functions are public so the
notebooks can show each stage (and draw the boxes):

1. ``helpers.video.read_uniform_frames``: ``num_frames`` grayscale frames spread over the clip.
2. ``follow_face``: per sampled frame, in this order (each step's numbers are on its constant):
   a. once a face is known, search a region around where it should be at scales near its
      size, upright and then rolled by ``ANGLES`` (a tilted head is a rotated face);
   b. otherwise (or on a miss) the whole frame shrunk to ``DETECT_WIDTH``;
   c. on a miss, within per-clip budgets (``FULL_FRAME_RETRIES``, ``ROLLED_RETRIES``): the whole
      frame again at a resolution where the smallest face looked for is ``RETRY_FACE_PX`` wide,
      then (while no face is followed) rolled;
   d. backward: frames just before a detection get step a from it.
   The followed face is the largest at its first detection; see ``pick_followed`` for when
   it switches to another face. ``confirm_tracks``: a track counts only once a second cascade
   finds a face near one of its first detections (``CONFIRM_CASCADES``): false alarms on
   windows and textures are dropped.
3. ``smooth_boxes``: each detection is averaged with its neighbours on the same track
   (``SMOOTH_ROWS``), so the detector's jitter does not pass for head motion;
   ``interpolate_boxes``: frames between two detections of the same face less than
   ``MAX_GAP_SECONDS`` apart get an interpolated box; frames within
   ``MAX_EXTRAPOLATE_SECONDS`` of the first/last detection keep that box. Those and the
   detected frames are ``usable``; the rest borrow the nearest box only to keep shapes.
4. ``trim_box`` + ``crop_face``: trim the box margins as the original article does, then
   crop and resize to ``size`` x ``size``.

The detector is a seam (``Detector``): ``DETECTORS`` registers OpenCV's frontal-face
cascades by name (``build_detector``; a cache records the name and settings, and
``detector_from_record`` rebuilds any of them); ``haar-frontalface-default`` is the default. Compared with the article (every frame, full-resolution Haar), detecting only
the sampled frames, small and near the last face, is over 15x faster; see
``benchmarks/bench_faces.py``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from helpers.video import read_uniform_frames

#: Width (pixels) frames are shrunk to for the first whole-frame look; narrower frames are
#: not enlarged. 640 keeps a 48 px face of a 1280x720 clip at the cascade's 24 px window;
#: the cascade's cost is set mostly by the smallest face searched for, and a 640 px frame
#: costs about half the full 720p one. Smaller faces are left to the retry (step c).
DETECT_WIDTH = 640
#: Image-pyramid step of whole-frame searches. Standard Haar settings (not tuned to the
#: synthetic photo, so they carry over to real faces); 1.2 costs about 60% of 1.1.
SCALE_FACTOR = 1.2
#: Pyramid step of the region search, a little finer than the whole frame's: the size range is
#: narrow (``TRACK_SIZES``), so it costs few levels (5) and lands closer to the face's size.
TRACK_SCALE_FACTOR = 1.15
#: Overlapping windows that must agree on a face; 5 rather than the article's 6 because a
#: shrunk frame offers fewer windows per face.
MIN_NEIGHBORS = 5
#: Smallest face looked for, as a fraction of the frame's shorter side: 40 px on a 720p
#: clip (a speaker far from the camera), 8 px on 176x144 (raised to the cascade's window).
MIN_FACE_FRACTION = 1 / 18
#: Width (pixels, at detection scale) of the smallest face in a whole-frame retry: about 2x
#: the cascade's 24 px window. Measured at 720p: ``grace_hopper.jpg`` 40 px wide was missed at
#: its own resolution and found enlarged 1.25x; at 45-65 px both photos were found at their
#: own resolution. 45 px makes the retry of a 720p frame 1.125x its size. At most 2x enlarged.
RETRY_FACE_PX = 45
#: Width (pixels, at detection scale) of the expected face in a region search: the region is
#: resized so that the smallest size searched (0.7 x 48 = 34 px) is well above the 24 px window.
#: The cascade's cost grows with the pixels and pyramid levels searched: a region 3 face widths
#: wide at 5 scales took ~4-5 ms of CPU here, a 640 px frame ~20-25 and a 720p one ~50.
TRACK_FACE_PX = 48
#: Size range searched around the expected face, as multiples of its width: in the benchmark
#: clip that zooms 80 <-> 200 px in 3.75 s, faces changed by down to 0.71x between sampled frames.
TRACK_SIZES = (0.7, 1.4)
#: Margin around the expected box searched in the region step, in face widths each side. The
#: expected box is the last one moved on at the velocity of the last two detections, so only
#: the change in motion between sampled frames has to fit in the margin.
REGION_MARGIN = 1.0
#: In-plane rotations (degrees) tried on a miss. Upright, the frontal cascade found the two test
#: photos (80-160 px, 640 px detection) in 23 of 24 cases rolled 0-5 degrees, 8 of 12 at 10,
#: 6 of 12 at 15, 3 of 12 at 20, none at 25-30. Steps of 10 up to 30 leave every roll up to
#: 35 degrees within 5 of one tried, which covers the tilts of people talking.
ANGLES = (10.0, -10.0, 20.0, -20.0, 30.0, -30.0)
#: Whole-frame retries at ``RETRY_FACE_PX`` per clip, made only while no face is followed:
#: each costs about as much as decoding 40 frames of a 720p clip, so 8 of them (a quarter of 32
#: sampled frames) bound the cost of clips where the face is hard to find. Region searches
#: are cheap and not counted.
FULL_FRAME_RETRIES = 8
#: Whole-frame searches rolled by ``ANGLES`` per clip, made only while no face is followed (once
#: one is, the region step tries the rolls near it, and the backward pass reaches frames before
#: it): one frame's worth, for clips whose face is tilted from the start.
ROLLED_RETRIES = 6
#: A whole-frame search switches to another face only when it is this many times wider than
#: the followed face: the speaker is the face nearest the camera, but a face of about the
#: same size (someone beside them, a poster) must not make the crops jump between people.
SWITCH_RATIO = 1.5
#: A whole-frame box is the followed face when its centre is within this many face widths of
#: the expected box (it was missed near there, so it may have moved more than the region allows).
FOLLOW_DISTANCE = 2.5
#: Longest gap (seconds of video) between two detections of the same face that is bridged by
#: interpolation: heads of people talking move smoothly over a second or so, while someone who
#: leaves the frame and comes back is away for longer. On 15 s clips sampled at 32 frames
#: (0.47 s apart) this bridges up to two missed frames in a row, never three.
MAX_GAP_SECONDS = 1.5
#: How far (seconds of video) before the clip's first / after its last detection that box is
#: kept: about one sampling step of a 15 s clip. Clips are cut around a person talking, so a
#: miss on the first or last sampled frame is more likely the detector's than the person's;
#: nothing says where the face went, so the box is held (not extrapolated) and only briefly.
#: Inside the clip, a track ending without a bridge is not extended: the person may have left.
MAX_EXTRAPOLATE_SECONDS = 0.5
#: Each detected box is averaged with up to this many detections of the same track before and
#: after it, symmetrically (fewer near the track's ends, so steady motion and zooms are kept).
#: Haar boxes jitter between frames: pyramid levels 15-20 % apart put the size on a coarse grid
#: and the centre moves by a pixel or so. On the demo clips (32 rows, the face nearly still)
#: the detected width changed by 2.7 % and the centre by 1.1 px from one row to the next, and
#: within a clip the change between crops followed the change of the head's roll with r 0.46
#: (crops cut from the true boxes: 0.99); averaged over 2 detections either side: 0.91, width
#: step 0.9 %; over 5: 0.91, 0.5 %, but then the boxes lagged a face moving along a curve
#: (IoU 0.45 with the true box in ``tests/test_faces.py``). 0: no smoothing.
SMOOTH_ROWS = 2
#: Only detections whose centre lies within this share of the face's width are averaged:
#: that is jitter. Farther ones are the face really moving (on a
#: 720p clip of a face moving and zooming from 80 to 200 px, averaging every neighbour put
#: 31 % of the boxes below IoU 0.5 with the true box), and the box is left as detected.
SMOOTH_TOLERANCE = 0.1
#: A Haar detector's track becomes usable only once a second cascade (this map: the followed
#: cascade -> the one that confirms it) finds a face in the region step around one of its first
#: ``CONFIRM_ROWS`` detections. One cascade's false alarms (windows, textures) are seldom the
#: other's: on faceless street-like scenes, textures and noise (``benchmarks/bench_faces.py
#: --faceless``) every false track of the default cascade was refused, and every track of the
#: real photos' clips confirmed. Other detectors are not confirmed (nothing to check them with).
CONFIRM_CASCADES = {"haarcascade_frontalface_default.xml": "haarcascade_frontalface_alt2.xml",
                    "haarcascade_frontalface_alt2.xml": "haarcascade_frontalface_default.xml",
                    "haarcascade_frontalface_alt.xml": "haarcascade_frontalface_default.xml"}
CONFIRM_ROWS = 3
#: Margins trimmed from a detected box before cropping, as in the article: Haar boxes
#: include some background at the sides and forehead above the face.
TRIM_SIDES = 0.075  # of the box width, from the left and from the right
TRIM_TOP = 0.05  # of the box height, from the top

_CASCADE_FILE = "haarcascade_frontalface_default.xml"
_CASCADE_WINDOW = 24  # the default cascade's training window, pixels: the sizes above are set for it


@dataclass
class FaceSequence:
    """Face crops of one clip, one row per sampled frame."""

    #: uint8 [n, size, size] grayscale face crops.
    faces: np.ndarray
    #: bool [n]: True only where the detector fired on the followed face (a confirmed track) in that frame.
    found: np.ndarray
    #: bool [n]: True where the crop is trusted as the followed face: ``found``, or a box
    #: interpolated/held within ``MAX_GAP_SECONDS`` / ``MAX_EXTRAPOLATE_SECONDS``. Train on these.
    usable: np.ndarray
    #: float [n, 4] x, y, w, h in original-frame pixels: the (untrimmed) box used for each
    #: crop; the crop itself is ``trim_box`` of it. Rows not ``usable`` borrow the nearest box.
    boxes: np.ndarray
    #: int [n]: which frame of the clip each row came from.
    frame_indices: np.ndarray
    #: Frame rate of the clip (``helpers.video.DEFAULT_FPS`` if its header had none).
    fps: float

    def __len__(self) -> int:
        return len(self.faces)


class Detector(Protocol):
    """What ``video_to_faces`` needs of a face detector.

    ``name`` and ``settings`` identify it (a cache records them); ``window`` is the smallest
    face (pixels) it can find, which sets the resolutions it is given. Calling it on a 2-D
    uint8 frame, optionally with a ``region`` (x, y, w, h) to search, the face sizes (pixels)
    to look for and a pyramid step (for detectors that have one; others ignore it), returns
    float [k, 4] boxes x, y, w, h in that frame's pixels.
    """

    name: str
    settings: dict
    window: int

    def __call__(self, gray: np.ndarray, region=None, min_size: float | None = None,
                 max_size: float | None = None, scale_factor: float | None = None) -> np.ndarray: ...


@lru_cache(maxsize=None)
def load_face_cascade(cascade: str = _CASCADE_FILE) -> cv2.CascadeClassifier:
    """One of OpenCV's bundled Haar cascades (file name in ``cv2.data.haarcascades``), loaded once per process."""
    data = getattr(cv2, "data", None)
    if data is None or not hasattr(cv2, "CascadeClassifier"):
        # opencv-python 5.x wheels ship neither the Haar cascades nor CascadeClassifier.
        raise ImportError(
            f"this OpenCV ({cv2.__version__}) has no Haar cascades; install a 4.x wheel: "
            'pip install "opencv-python-headless>=4.10,<5"'
        )
    path = Path(data.haarcascades) / cascade
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise OSError(f"could not load the Haar cascade {path}; reinstall opencv-python-headless>=4.10,<5")
    return classifier


def _region_slice(shape: tuple[int, int], region) -> tuple[int, int, int, int]:
    """Integer bounds x0, y0, x1, y1 of ``region`` (x, y, w, h) clipped to a frame of ``shape``."""
    height, width = shape
    if region is None:
        return 0, 0, width, height
    x, y, w, h = (float(v) for v in region)
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    return x0, y0, max(x0, min(width, int(np.ceil(x + w)))), max(y0, min(height, int(np.ceil(y + h))))


@dataclass
class HaarDetector:
    """One of OpenCV's frontal-face Haar cascades (default ``haarcascade_frontalface_default.xml``) as a ``Detector``.

    Its ``name`` comes from the cascade file (``haarcascade_frontalface_alt2.xml``:
    ``haar-frontalface-alt2``), its ``window`` from the cascade itself (24 px default, 20 alt/alt2).
    """

    scale_factor: float = SCALE_FACTOR
    min_neighbors: int = MIN_NEIGHBORS
    cascade: str = _CASCADE_FILE

    def __post_init__(self):
        # Settings come back from JSON a user may have edited: numbers as numbers, or a ValueError now.
        self.scale_factor, self.min_neighbors = float(self.scale_factor), int(self.min_neighbors)
        if Path(self.cascade).name != self.cascade:
            raise ValueError(f"cascade {self.cascade!r} must be a file name in cv2.data.haarcascades, not a path")

    @property
    def name(self) -> str:
        return "haar-" + Path(self.cascade).stem.removeprefix("haarcascade_").replace("_", "-")

    @property
    def window(self) -> int:
        return int(load_face_cascade(self.cascade).getOriginalWindowSize()[0])

    @property
    def settings(self) -> dict:
        """The arguments that rebuild it, and the OpenCV version (results may differ slightly across versions)."""
        return {"cascade": self.cascade, "scale_factor": self.scale_factor, "min_neighbors": self.min_neighbors,
                "opencv": cv2.__version__}

    def __call__(self, gray: np.ndarray, region=None, min_size: float | None = None,
                 max_size: float | None = None, scale_factor: float | None = None) -> np.ndarray:
        """Faces in ``gray`` (inside ``region`` if given), ``min_size``..``max_size`` px wide: float [k, 4]."""
        x0, y0, x1, y1 = _region_slice(gray.shape, region)
        patch = gray[y0:y1, x0:x1]
        min_side = max(self.window, int(round(min_size or 0)))
        if min(patch.shape, default=0) < min_side:
            return np.zeros((0, 4), np.float64)
        found = load_face_cascade(self.cascade).detectMultiScale(
            patch, scaleFactor=scale_factor or self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            maxSize=(int(max_size), int(max_size)) if max_size else None,
        )
        if len(found) == 0:
            return np.zeros((0, 4), np.float64)
        return np.asarray(found, np.float64) + (x0, y0, 0, 0)


#: The registered face detectors: name (as a manifest records it, and ``prepare --detector``
#: takes it) -> builder taking the detector's ``settings`` (all optional) as keywords. Each is one
#: of the frontal-face cascades OpenCV 4.x ships; ``alt2`` is the usual second choice (a
#: smaller, 20 px window, fewer false alarms than ``default`` in OpenCV's own comparisons).
DETECTORS: dict[str, Callable[..., Detector]] = {
    HaarDetector(cascade=f"haarcascade_frontalface_{kind}.xml").name:
        partial(HaarDetector, cascade=f"haarcascade_frontalface_{kind}.xml")
    for kind in ("default", "alt2", "alt")
}
#: The detector ``prepare`` uses unless told otherwise.
DEFAULT_DETECTOR = "haar-frontalface-default"


def build_detector(detector: str | Detector | None = None, **settings) -> Detector:
    """A detector: ``detector`` itself if it is one, else the registered one of that name
    (None: ``DEFAULT_DETECTOR``) built with ``settings``.

    An unknown name, or settings its builder does not take, raise ``ValueError`` listing the
    registered names.
    """
    if detector is not None and not isinstance(detector, str):
        return detector
    name = DEFAULT_DETECTOR if detector is None else detector
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    try:
        built = DETECTORS[name](**settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"face detector {name!r} does not take the settings {settings} ({err})") from None
    if built.name != name:  # e.g. a record whose cascade is not the one its name says
        raise ValueError(f"face detector settings {settings} make {built.name!r}, not {name!r}")
    return built


def detector_record(detector: Detector | None = None) -> dict:
    """What identifies ``detector`` (default ``build_detector()``) in a manifest or run: ``{"name", "settings"}``."""
    detector = detector or build_detector()
    return {"name": detector.name, "settings": dict(detector.settings)}


def detector_from_record(record: dict | None) -> Detector:
    """The detector a ``detector_record`` describes, any registered one; None (a run that
    recorded none): the default.

    An OpenCV version other than the recorded one gives a warning, not an error: the
    cascade file is the same, but its results may differ slightly.
    """
    if record is None:
        return build_detector()
    settings = dict(record.get("settings") or {})
    opencv = settings.pop("opencv", cv2.__version__)
    detector = build_detector(str(record.get("name")), **settings)
    if opencv != cv2.__version__:
        warnings.warn(f"the faces were detected with OpenCV {opencv}, this is {cv2.__version__}: "
                      "face boxes may differ slightly", stacklevel=2)
    return detector


def search(detector: Detector, gray: np.ndarray, region=None, scale: float = 1.0, angle: float = 0.0,
           min_size: float = 0.0, max_size: float | None = None, scale_factor: float | None = None) -> np.ndarray:
    """Run ``detector`` on ``region`` of ``gray`` resized by ``scale`` and rotated by ``angle`` degrees.

    The rotation is OpenCV's (counter-clockwise for positive angles), so it sets upright a face
    rolled by ``-angle``. Sizes are in frame pixels. Boxes come back in frame pixels: a face
    found on the rotated image keeps its size, centred where its centre maps back (an
    upright box around the tilted face, as ``helpers.synthetic.place_face`` defines the true box).
    """
    x0, y0, x1, y1 = _region_slice(gray.shape, region)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((0, 4), np.float64)
    patch = gray[y0:y1, x0:x1]
    if scale != 1.0:
        size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
        # INTER_AREA averages pixels when shrinking (no aliasing); linear when enlarging.
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    sx, sy = (x1 - x0) / patch.shape[1], (y1 - y0) / patch.shape[0]
    rot = None
    if angle:
        h, w = patch.shape
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        patch = cv2.warpAffine(patch, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mean_scale = (sx + sy) / 2
    boxes = detector(patch, min_size=min_size / mean_scale,
                     max_size=max_size / mean_scale if max_size else None, scale_factor=scale_factor)
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if rot is not None:
        centres = boxes[:, :2] + boxes[:, 2:] / 2
        back = cv2.transform(centres[None].astype(np.float64), cv2.invertAffineTransform(rot))[0]
        boxes = np.column_stack([back - boxes[:, 2:] / 2, boxes[:, 2:]])
    return boxes * (sx, sy, sx, sy) + (x0, y0, 0, 0)


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
    scale = min(1.0, detect_width / gray.shape[1])
    detector = HaarDetector(scale_factor, min_neighbors)
    return search(detector, gray, scale=scale, min_size=min_face_fraction * min(gray.shape))


def largest_box(boxes: np.ndarray) -> np.ndarray | None:
    """The box with the largest area (the face nearest the camera), or None when there is none."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    return boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))]


def find_face(gray: np.ndarray, detector: Detector | None = None) -> np.ndarray | None:
    """The largest face in one grayscale frame (x, y, w, h in frame pixels), or None.

    The whole-frame steps of ``follow_face`` without a budget: shrunk to ``DETECT_WIDTH``
    first; on a miss at ``RETRY_FACE_PX`` resolution, then rolled by ``ANGLES``.
    """
    return _FaceFollower(detector or HaarDetector(), gray.shape, budget=False).whole_frame(gray, None)


def region_around(box, shape: tuple[int, int], margin: float = REGION_MARGIN) -> np.ndarray:
    """The region (x, y, w, h) ``margin`` box widths around ``box`` on each side, clipped to the frame."""
    x, y, w, h = (float(v) for v in box)
    m = margin * w
    x0, y0 = max(0.0, x - m), max(0.0, y - m)
    x1, y1 = min(float(shape[1]), x + w + m), min(float(shape[0]), y + h + m)
    return np.array([x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)])


def expected_box(before, last, t_before: float, t_last: float, t: float) -> np.ndarray:
    """Where the followed face should be at time ``t``: ``last`` moved on at the pace since ``before``.

    Only the position moves (a size change reverses too often to extrapolate; the region
    step searches ``TRACK_SIZES`` around it), by at most one face width per sampling step, so
    a jittery pair of detections cannot throw the search far away. ``before`` None: ``last``.
    """
    last = np.asarray(last, np.float64)
    if before is None or t_last <= t_before:
        return last.copy()
    steps = (t - t_last) / (t_last - t_before)
    move = (last[:2] - np.asarray(before, np.float64)[:2]) * steps
    limit = last[2] * max(1.0, steps)
    length = float(np.hypot(*move))
    if length > limit:
        move *= limit / length
    return np.concatenate([last[:2] + move, last[2:]])


def pick_followed(boxes: np.ndarray, expected) -> np.ndarray | None:
    """Which of a whole-frame search's ``boxes`` is the followed face, or None.

    The rule: with no face followed yet (``expected`` None), the largest. Otherwise a box
    ``SWITCH_RATIO`` (1.5) times wider than the expected face is taken (a clearly larger face
    is the speaker now); failing that, the box nearest the expected one among those within
    ``FOLLOW_DISTANCE`` widths of it and less than ``SWITCH_RATIO`` times larger or smaller;
    failing that, None: a stranger who is not clearly larger is not the person followed.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    widest = largest_box(boxes)
    if expected is None:
        return widest
    ex, ey, ew, eh = (float(v) for v in expected)
    if widest[2] >= SWITCH_RATIO * ew:
        return widest
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    distance = np.hypot(*(centres - (ex + ew / 2, ey + eh / 2)).T)
    ratio = boxes[:, 2] / ew
    same = (distance <= FOLLOW_DISTANCE * ew) & (ratio > 1 / SWITCH_RATIO)
    if not same.any():
        return None
    return boxes[int(np.argmin(np.where(same, distance, np.inf)))]


class _FaceFollower:
    """The per-frame searches of ``follow_face``, holding the retry budget and the last roll."""

    def __init__(self, detector: Detector, shape: tuple[int, int], budget: bool = True):
        self.detector, self.shape = detector, shape
        self.retries = FULL_FRAME_RETRIES if budget else None
        self.rolled = ROLLED_RETRIES if budget else None
        self.min_face = max(MIN_FACE_FRACTION * min(shape), 1.0)
        self.angle = 0.0  # roll that last found the face: tried first next time

    def in_region(self, gray: np.ndarray, expected, near: bool | None = None) -> np.ndarray | None:
        """Step a: the face near ``expected``, at sizes ``TRACK_SIZES`` of it, upright and rolled.

        Rolls are tried from the one that found the face last time (heads stay tilted for a
        while). ``near`` True: only rolls within 10 degrees of it; False: only the others; None: all.
        """
        w = float(expected[2])
        region = region_around(expected, self.shape)
        scale = min(2.0, TRACK_FACE_PX / w * self.detector.window / _CASCADE_WINDOW)
        low, high = TRACK_SIZES[0] * w, TRACK_SIZES[1] * w
        centre = np.asarray(expected[:2], np.float64) + np.asarray(expected[2:], np.float64) / 2
        angles = sorted({0.0, *ANGLES}, key=lambda a: (abs(a - self.angle), abs(a)))
        if near is not None:
            angles = [a for a in angles if (abs(a - self.angle) <= 10) == near]
        for angle in angles:
            boxes = search(self.detector, gray, region, scale, angle, low, high, TRACK_SCALE_FACTOR)
            if len(boxes):
                self.angle = angle
                distance = np.hypot(*(boxes[:, :2] + boxes[:, 2:] / 2 - centre).T)
                return boxes[int(np.argmin(distance))]
        return None

    def _spend(self, kind: str) -> bool:
        """Take one retry of ``kind`` ("retries" or "rolled") from the clip's budget, if any is left."""
        left = getattr(self, kind)
        if left is not None:
            if left <= 0:
                return False
            setattr(self, kind, left - 1)
        return True

    def whole_frame(self, gray: np.ndarray, expected) -> np.ndarray | None:
        """Steps b-c: the whole frame shrunk to ``DETECT_WIDTH``, then (within the budget) finer,
        then (with no face followed yet) rolled."""
        first_scale = min(1.0, DETECT_WIDTH / self.shape[1])
        box = pick_followed(search(self.detector, gray, None, first_scale, 0.0, self.min_face), expected)
        if box is not None:
            return box
        # Where the smallest face looked for is RETRY_FACE_PX wide; at most 2x enlarged.
        retry_scale = min(2.0, max(first_scale, RETRY_FACE_PX / self.min_face))
        # Only while no face is followed: with one, the region step already searched where it should be.
        if expected is None and retry_scale > first_scale * 1.05 and self._spend("retries"):
            box = pick_followed(search(self.detector, gray, None, retry_scale, 0.0, self.min_face), expected)
            if box is not None:
                return box
        for angle in ANGLES if expected is None else ():
            if not self._spend("rolled"):
                break
            box = pick_followed(search(self.detector, gray, None, first_scale, angle, self.min_face), expected)
            if box is not None:
                self.angle = angle
                return box
        return None


def _where_next(boxes: np.ndarray, hits: list[int], times: np.ndarray, i: int) -> tuple[bool, np.ndarray | None, np.ndarray | None]:
    """Where to look in row ``i``: (live, expected, near).

    ``live``: the current track's last detection is at most ``MAX_GAP_SECONDS`` old;
    ``expected``: then, where the face should be (``expected_box``), else None; ``near``: where
    the region step searches, ``expected`` or, after a long absence, where the face was last
    seen (cheap, and usually where the person comes back; a face found there still starts a
    new track); None before any detection.
    """
    if not hits:
        return False, None, None
    if times[i] - times[hits[-1]] > MAX_GAP_SECONDS:
        return False, None, boxes[hits[-1]]
    before = boxes[hits[-2]] if len(hits) > 1 else None
    t_before = times[hits[-2]] if len(hits) > 1 else 0.0
    expected = expected_box(before, boxes[hits[-1]], t_before, times[hits[-1]], times[i])
    return True, expected, expected


def _look(follower: _FaceFollower, gray: np.ndarray, expected, near) -> tuple[np.ndarray | None, bool]:
    """One frame's forward searches: (box or None, whether it is a clearly larger face).

    The roll the face had and those next to it; then the whole frame (the face may have moved
    further than the region); then the other rolls (it may have tilted further).
    """
    box = follower.in_region(gray, near, near=True) if near is not None else None
    if box is not None:
        return box, False
    box = follower.whole_frame(gray, expected)
    if box is not None:
        return box, expected is not None and box[2] >= SWITCH_RATIO * expected[2]
    if near is not None:
        return follower.in_region(gray, near, near=False), False
    return None, False


def _fill_backward(follower: _FaceFollower, frames: np.ndarray, times: np.ndarray,
                   boxes: np.ndarray, track: np.ndarray) -> None:
    """Step d, in place: frames without a face at most ``MAX_GAP_SECONDS`` before a detection
    get the region step from it (a clip that starts with a tilted or small face is found from
    the frames after)."""
    for i in range(len(frames) - 2, -1, -1):
        j = i + 1
        if track[i] < 0 and track[j] >= 0 and times[j] - times[i] <= MAX_GAP_SECONDS:
            box = follower.in_region(frames[i], boxes[j])
            if box is not None:
                boxes[i], track[i] = box, track[j]


def follow_face(frames: np.ndarray, times: np.ndarray, detector: Detector | None = None,
                budget: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Detect and follow one face through grayscale frames [n, h, w] taken at ``times`` (seconds).

    Returns (boxes float [n, 4], NaN where not found; track int [n], -1 where not found).
    Forward, each frame: the region step (``_FaceFollower.in_region``) around where the face
    should be, then the whole-frame steps (``_look``). After an absence longer than
    ``MAX_GAP_SECONDS`` the person may have gone, so the next detection starts a new track: a
    face where the followed one was last seen, else the largest face. So does a switch to a
    clearly larger face (``pick_followed``). Then backward (``_fill_backward``).
    ``track`` numbers the segments: interpolation never joins two.
    """
    n = len(frames)
    boxes, track = np.full((n, 4), np.nan), np.full(n, -1, np.int64)
    if n == 0:
        return boxes, track
    times = np.asarray(times, np.float64)
    follower = _FaceFollower(detector or HaarDetector(), frames.shape[1:3], budget)
    hits: list[int] = []  # rows of the current track, latest last
    current = -1
    for i, gray in enumerate(frames):
        live, expected, near = _where_next(boxes, hits, times, i)
        box, larger = _look(follower, gray, expected, near)
        if box is None:
            continue
        if larger or not live:  # a first face, one after a long absence, or a clearly larger one
            current, hits = current + 1, []
        boxes[i], track[i] = box, current
        hits.append(i)
    _fill_backward(follower, frames, times, boxes, track)
    return boxes, track


def confirm_tracks(frames: np.ndarray, boxes: np.ndarray, track: np.ndarray,
                   detector: Detector | None = None) -> np.ndarray:
    """``track`` with the tracks ``CONFIRM_CASCADES`` does not confirm set to -1 (a new array).

    A track is confirmed when the confirming cascade, searching the region around one of its
    first ``CONFIRM_ROWS`` detections (the region step, rolls included), finds a face there.
    A detector that is not a ``HaarDetector`` with a cascade in the map: ``track`` unchanged.
    """
    track = np.array(track, np.int64)
    detector = detector or HaarDetector()
    other = CONFIRM_CASCADES.get(getattr(detector, "cascade", None)) if isinstance(detector, HaarDetector) else None
    if other is None:
        return track
    follower = _FaceFollower(HaarDetector(detector.scale_factor, detector.min_neighbors, other), frames.shape[1:3])
    for t in np.unique(track[track >= 0]):
        rows = np.flatnonzero(track == t)[:CONFIRM_ROWS]
        if not any(follower.in_region(frames[i], boxes[i]) is not None for i in rows):
            track[track == t] = -1
    return track


def interpolate_boxes(boxes: np.ndarray, track: np.ndarray, times: np.ndarray,
                      max_gap: float = MAX_GAP_SECONDS, max_extrapolate: float = MAX_EXTRAPOLATE_SECONDS
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Fill rows without a detection where that is safe: (boxes [n, 4], usable bool [n]).

    Between two detections of the same track at most ``max_gap`` seconds apart: linear in
    time. Within ``max_extrapolate`` seconds before the clip's first / after its last
    detection: that detection's box, held. Everything else (a gap too long, or between two
    tracks) stays NaN and not usable.
    """
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    times = np.asarray(times, np.float64)
    usable = np.asarray(track) >= 0
    hits = np.flatnonzero(usable)
    for a, b in zip(hits[:-1], hits[1:]):
        if b - a > 1 and track[a] == track[b] and times[b] - times[a] <= max_gap:
            t = ((times[a + 1:b] - times[a]) / (times[b] - times[a]))[:, None]
            boxes[a + 1:b] = boxes[a] * (1 - t) + boxes[b] * t
            usable[a + 1:b] = True
    if len(hits):
        # Only at the clip's ends: inside the clip, a track that ends unbridged is someone leaving.
        ends = (times < times[hits[0]]) & (times >= times[hits[0]] - max_extrapolate)
        boxes[ends], usable[ends] = boxes[hits[0]], True
        ends = (times > times[hits[-1]]) & (times <= times[hits[-1]] + max_extrapolate)
        boxes[ends], usable[ends] = boxes[hits[-1]], True
    return boxes, usable


def smooth_boxes(boxes: np.ndarray, track: np.ndarray, rows: int = SMOOTH_ROWS) -> np.ndarray:
    """Average each detected box with the detections of its track up to ``rows`` either side
    that lie within ``SMOOTH_TOLERANCE`` of it (jitter, not motion).

    The window shrinks near the ends of the track; a neighbour farther than the tolerance
    (the face moving or zooming) is left out, so real motion keeps its boxes and only the
    jitter between detections is averaged out. Rows without a detection (track -1) are left
    as they are. Returns a new float [n, 4].
    """
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    track = np.asarray(track)
    out = boxes.copy()
    for t in np.unique(track[track >= 0]):
        hits = np.flatnonzero(track == t)
        # Centre and size are averaged (not the corners), so a zoom about the centre stays centred.
        cs = np.concatenate([boxes[hits, :2] + boxes[hits, 2:] / 2, boxes[hits, 2:]], axis=1)
        for k, i in enumerate(hits):
            r = min(rows, k, len(hits) - 1 - k)
            window = cs[k - r:k + r + 1]
            w = cs[k, 2]
            # Sizes stay in: the cascade's pyramid puts them on a grid 15-20 % apart (jitter).
            near = np.hypot(*(window[:, :2] - cs[k, :2]).T) <= SMOOTH_TOLERANCE * w * (1 + 1e-9)
            m = window[near].mean(axis=0)
            out[i] = np.concatenate([m[:2] - m[2:] / 2, m[2:]])
    return out


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
    Used only so that rows that are not ``usable`` still have a crop of the right shape.
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


def frames_to_faces(frames: np.ndarray, frame_indices, fps: float, size: int = 48,
                    detector: Detector | None = None) -> FaceSequence:
    """Detect, follow, fill, trim and crop faces in grayscale frames [n, h, w] (see ``video_to_faces``)."""
    frames = np.asarray(frames)
    n = len(frames)
    frame_indices = np.asarray(frame_indices, np.int64)
    times = frame_indices / float(fps)
    detected, track = follow_face(frames, times, detector)
    track = confirm_tracks(frames, detected, track, detector)
    detected[track < 0] = np.nan
    found = track >= 0
    boxes, usable = interpolate_boxes(smooth_boxes(detected, track), track, times)
    if usable.any():
        boxes = fill_missing_boxes(boxes, usable)
    elif n:
        # No face anywhere: crop a fixed region so shapes stay right; ``usable`` says the crops are not faces.
        boxes[:] = fallback_box(frames.shape[2], frames.shape[1])
    faces = np.zeros((n, size, size), np.uint8)
    for i, frame in enumerate(frames):
        faces[i] = crop_face(frame, trim_box(boxes[i]), size)
    return FaceSequence(faces, found, usable, boxes, frame_indices, float(fps))


def video_to_faces(path: str | Path, num_frames: int = 32, size: int = 48,
                   detector: Detector | None = None) -> FaceSequence:
    """Face crops of ``num_frames`` frames sampled uniformly over the clip at ``path``.

    Clips with fewer frames give each frame once (fewer rows). One face is followed
    (``follow_face``): ``found`` marks frames where the detector fired on it, ``usable`` those
    plus frames bridged within the limits of ``interpolate_boxes``. If no frame has a face,
    both are all False and the crops come from ``fallback_box`` (the centred square).
    ``detector`` defaults to ``HaarDetector()``. Unreadable files raise
    ``helpers.video.VideoReadError`` naming the file.
    """
    frames, indices, info = read_uniform_frames(path, num_frames, grayscale=True)
    return frames_to_faces(frames, indices, info.fps, size, detector)
