"""Draw the bundled face photo into video frames, with the true face box known.

The photo is matplotlib's sample ``grace_hopper.jpg`` (a U.S. Navy portrait of Rear
Admiral Grace Hopper, a work of the U.S. federal government and so in the public
domain). It ships inside every matplotlib install, so tests, the demo dataset and the
benchmarks can make face videos offline.

Everything here is a small pure function on numpy arrays, apart from ``write_video``,
``write_synthetic_720p_clip`` and ``load_face_photo``. ``HeadSprite`` is the one way a head
is drawn: ``place_face`` draws one frame with it, the demo dataset every frame of a clip.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

#: Face box (x, y, w, h) of the frontal-face Haar cascade in ``grace_hopper.jpg`` (512x600),
#: measured with scaleFactor 1.1, minNeighbors 6.
PHOTO_FACE_BOX: tuple[int, int, int, int] = (155, 105, 222, 222)

#: How much of the photo around the face box is pasted (head, hair and collar), in face widths.
_HEAD_MARGIN = 0.45


def face_photo_path() -> Path:
    """Path of ``grace_hopper.jpg`` inside the installed matplotlib."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@lru_cache(maxsize=1)
def load_face_photo() -> np.ndarray:
    """The face photo as a BGR uint8 array (600 x 512 x 3), read once per process."""
    return _read_photo(face_photo_path(), "is matplotlib installed?")


def _read_photo(path: Path, fix: str) -> np.ndarray:
    """A photo as a read-only BGR uint8 array; a clear error naming it (and ``fix``) if it cannot be read."""
    photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if photo is None:
        raise FileNotFoundError(f"could not read the face photo {path}; {fix}")
    photo.setflags(write=False)
    return photo


def head_patch(photo: np.ndarray, face_box: tuple[int, int, int, int] = PHOTO_FACE_BOX) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Cut the head out of ``photo``: the patch and the face box inside it."""
    x, y, w, h = face_box
    m = int(round(_HEAD_MARGIN * w))
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(photo.shape[1], x + w + m), min(photo.shape[0], y + h + m)
    return photo[y0:y1, x0:x1], (float(x - x0), float(y - y0), float(w), float(h))


def soft_ellipse_mask(height: int, width: int, feather: float = 0.15) -> np.ndarray:
    """A float32 alpha mask in [0, 1]: 1 inside an ellipse filling the patch, fading at its rim."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.sqrt(((xx + 0.5) / width * 2 - 1) ** 2 + ((yy + 0.5) / height * 2 - 1) ** 2)
    return np.clip((1.0 - r) / feather, 0.0, 1.0)


def place_face(
    background: np.ndarray,
    center: tuple[float, float],
    face_width: float,
    angle: float = 0.0,
    photo: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Paste the head into a copy of ``background`` (BGR uint8, 3 channels).

    ``center`` is where the face box's centre lands (pixels), ``face_width`` the face
    box's width in pixels and ``angle`` an in-plane rotation in degrees
    (counter-clockwise) about the face centre. Returns the frame and the true face box
    (x, y, w, h) in frame pixels (the unrotated box, which a detector sees for small angles).
    One frame of ``HeadSprite``; to draw many frames of one head, make the sprite once.
    """
    return HeadSprite(face_width, photo=photo).paste(background, center, angle)


class HeadSprite:
    """The head of ``head_patch``, scaled (and styled) once; each frame only rotates and pastes it.

    The patch is scaled to ``face_width`` with area averaging (no aliasing), passed through
    ``style(patch, face_box)`` if given (the demo's brightness, contrast, blur, shadow),
    and given the soft ellipse mask as alpha. ``paste`` rotates it about the face centre
    and blends it into a frame: about 5x faster per frame than scaling every time.
    """

    def __init__(self, face_width: float, style: Callable[[np.ndarray, tuple], np.ndarray] | None = None,
                 photo: np.ndarray | None = None):
        patch, (fx, fy, fw, fh) = head_patch(load_face_photo() if photo is None else photo)
        ph, pw = patch.shape[:2]
        size = (max(1, round(pw * face_width / fw)), max(1, round(ph * face_width / fw)))
        sx, sy = size[0] / pw, size[1] / ph
        small = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        if style is not None:
            small = style(small, (fx * sx, fy * sy, fw * sx, fh * sy))
        alpha = cv2.resize(soft_ellipse_mask(ph, pw), size, interpolation=cv2.INTER_AREA)
        self.rgba = np.dstack([small, (alpha * 255 + 0.5).astype(np.uint8)])
        self.center = ((fx + fw / 2) * sx, (fy + fh / 2) * sy)
        self.face_size = (float(face_width), fh * face_width / fw)

    def paste(self, background: np.ndarray, center: tuple[float, float],
              angle: float = 0.0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """Frame with the face centred at ``center`` and rolled ``angle`` degrees (counter-clockwise); and the face box."""
        rot = cv2.getRotationMatrix2D(self.center, angle, 1.0)
        rot[0, 2] += center[0] - self.center[0]
        rot[1, 2] += center[1] - self.center[1]
        ph, pw = self.rgba.shape[:2]
        corners = cv2.transform(np.float32([[[0, 0], [pw, 0], [0, ph], [pw, ph]]]), rot)[0]
        h, w = background.shape[:2]
        x0, y0 = (max(0, int(np.floor(v))) for v in corners.min(axis=0))
        x1, y1 = (min(lim, int(np.ceil(v))) for v, lim in zip(corners.max(axis=0), (w, h)))
        frame = background.copy()
        if x1 > x0 and y1 > y0:
            rot[:, 2] -= (x0, y0)
            warped = cv2.warpAffine(self.rgba, rot, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT)
            alpha = cv2.merge([warped[..., 3]] * 3)
            # OpenCV's saturating uint8 arithmetic: face * a + background * (1 - a), a = alpha / 255.
            face = cv2.multiply(warped[..., :3], alpha, scale=1 / 255)
            rest = cv2.multiply(frame[y0:y1, x0:x1], cv2.bitwise_not(alpha), scale=1 / 255)
            frame[y0:y1, x0:x1] = cv2.add(face, rest)
        fw, fh = self.face_size
        return frame, (center[0] - fw / 2, center[1] - fh / 2, fw, fh)


def gradient_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour gradient with a few soft blobs and mild grain: a varied 'room'."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(30, 220, size=(2, 3)).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    t = (np.cos(direction) * xx / width + np.sin(direction) * yy / height)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    for _ in range(int(rng.integers(2, 5))):
        bx, by = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.08, 0.25) * max(height, width)
        blob = np.exp(-(((xx - bx) ** 2 + (yy - by) ** 2) / (2 * radius**2)))
        img += blob[..., None] * rng.uniform(-50, 50, size=3).astype(np.float32)
    img += rng.normal(0, 3, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def box_iou(a: tuple[float, float, float, float] | np.ndarray, b: tuple[float, float, float, float] | np.ndarray) -> float:
    """Intersection over union of two (x, y, w, h) boxes; 0 when either is empty."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def write_video(path: str | Path, frames, fps: float, fourcc: str = "mp4v") -> int:
    """Write BGR (or grayscale) uint8 frames to ``path`` with OpenCV; returns the frame count.

    ``frames`` may be any iterable, so long clips never need to be held in memory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h), frame.ndim == 3)
                if not writer.isOpened():
                    raise OSError(f"OpenCV could not open a video writer for {path} (fourcc {fourcc!r})")
            writer.write(np.ascontiguousarray(frame))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count



def drifting_track(n_frames: int) -> list[tuple[tuple[float, float], float]]:
    """(centre, face width) per frame of a 1280x720 clip: one loop across the frame, face 130-210 px wide."""
    n = n_frames
    return [((640 + 300 * np.sin(2 * np.pi * i / n), 360 + 60 * np.sin(4 * np.pi * i / n)),
             170 + 40 * np.cos(2 * np.pi * i / n)) for i in range(n)]


def write_synthetic_720p_clip(path: str | Path, seconds: int, fps: int = 30, seed: int = 0) -> np.ndarray:
    """A short 1280x720 clip: the bundled photo drifting over a drawn background. Synthetic, not real footage.

    ``seconds`` long at ``fps``; ``seed`` draws the background. Returns the true face box
    (x, y, w, h) of every frame, one row per frame. Notebooks 01 and 02 time the article's
    every-frame search against the series' sampled one on it.
    """
    background = gradient_background(720, 1280, np.random.default_rng(seed))
    boxes = []

    def frames():
        for centre, width in drifting_track(seconds * fps):
            frame, box = place_face(background, centre, width)
            boxes.append(box)
            yield frame

    write_video(path, frames(), fps)
    return np.asarray(boxes)

# --- A second real face, for tests and benchmarks of helpers.faces ---------------------

#: Face box (x, y, w, h) of the frontal-face Haar cascade in scikit-image's ``astronaut.png``
#: (512x512), measured as ``PHOTO_FACE_BOX`` is (scaleFactor 1.1, minNeighbors 6).
ASTRONAUT_FACE_BOX: tuple[int, int, int, int] = (177, 66, 95, 95)


def astronaut_photo_path() -> Path:
    """Path of ``astronaut.png`` inside the installed scikit-image (a test/benchmark dependency).

    NASA's portrait of astronaut Eileen Collins; scikit-image's ``data.astronaut`` says: "No
    known copyright restrictions, released into the public domain". Found without importing
    scikit-image.
    """
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('the second face photo ships with scikit-image: pip install "scikit-image>=0.22"')
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"


def align_face_photo(photo: np.ndarray, face_box: tuple[int, int, int, int]) -> np.ndarray:
    """``photo`` scaled and shifted onto a 600x512 canvas so its face lies on ``PHOTO_FACE_BOX``.

    Gives any portrait the bundled photo's geometry, so ``place_face(..., photo=...)`` works on it.
    """
    x, y, w, h = face_box
    tx, ty, tw, th = PHOTO_FACE_BOX
    sx, sy = tw / w, th / h
    affine = np.float32([[sx, 0, tx - x * sx], [0, sy, ty - y * sy]])
    return cv2.warpAffine(photo, affine, (512, 600), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=1)
def load_astronaut_photo() -> np.ndarray:
    """``astronaut.png`` as BGR uint8, aligned by ``align_face_photo`` (600 x 512 x 3), read once."""
    aligned = align_face_photo(_read_photo(astronaut_photo_path(), "reinstall scikit-image"), ASTRONAUT_FACE_BOX)
    aligned.setflags(write=False)
    return aligned
