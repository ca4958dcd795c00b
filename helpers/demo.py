"""The offline synthetic demo dataset, laid out like ChaLearn First Impressions V2.

``make_demo_dataset(out_dir)`` (or ``python -m helpers demo-data DIR``) writes, from a
seed and without any download, short mp4 clips of ONE face (matplotlib's bundled
``grace_hopper.jpg``, drawn by ``helpers.synthetic``) whose five "personality" labels
are functions of things you can see in a 48x48 grayscale face crop. The real dataset
has 10,000 clips from more than 3,000 videos (people); this one draws a single face photo for
every "person" (video id), who differ in their scores, background and framing only, so a model
trained on it learns the five visual factors below, not personality.

Layout (the real one's, see ``data/README.md``)::

    DIR/train/training80_01/J4GQm9j0JZ0.003.mp4       groups of at most 80 clips
    DIR/validation/validation80_01/...
    DIR/test/test80_01/...
    DIR/annotation_training.pkl                        the real annotation format
    DIR/annotation_validation.pkl
    DIR/annotation_test.pkl
    DIR/demo_factors.json                              the ground truth; training never reads it
    DIR/dataset.json                                   {"kind": "demo", ...} (helpers.dataset.dataset_kind)

Clips are named ``<11-character video id>.<NNN>.mp4``; one video id is one person, with 1-6
clips (numbers ``.000``-``.005``). Splits are 60/20/20 like the real 6000/2000/2000 and, as
in the real data, made per clip: the same person has clips on several sides (about 85 % of
the test clips come from a video with training clips; the real test split: 84 %).

Labels (``helpers.demo_labels``, which has the details and the figures): each video gets
person scores (means like the real training means, positively correlated traits, SD 0.11);
each clip adds its own deviation (SD 0.088), clipped to [0, 1]: that is the clip's
*noiseless score* ``s``, and it sets the clip's visual factors, so all of ``s`` is visible
in the clip. The label is ``clip(s + e, 0, 1)`` with ``e ~ Normal(0, NOISE_STD = 0.02)``.
Like the real labels, most of a trait's variance lies between people, so a prediction that
only recognises the person (the mean of the same video's training clips) beats the
train-mean baseline (``helpers.labels``). The factors, with ``s`` the trait's noiseless score:

==================  ===========================================================================
trait               visual factor (applied to the head before it is rotated and placed)
==================  ===========================================================================
extraversion        head roll over time: ``angle(i) = 14 deg * sin(2 pi f i / n + phase)`` for
                    frame ``i`` of ``n``, with ``f = 1 + 5 s`` cycles per clip (1 to 6);
                    ``phase`` is random. Every frequency gives nearly the same spread of
                    per-frame angles, so only the motion over time tells the score: a
                    per-frame model averaged over time cannot learn it; a sequence of 32
                    frames spread over the clip (>= 5 samples per cycle) can. (From the
                    other four traits a linear fit explains only about 11 % of it.) The
                    amplitude is well above the jitter of detected face boxes, which
                    otherwise hides the roll in the crops (``helpers.faces.SMOOTH_ROWS``).
neuroticism         brightness: ``b = 100 s - 50`` grey levels added to the face
agreeableness       contrast: ``c = 0.55 + 0.9 s``; face pixels ``p -> M + b + c (p - M)``,
                    ``M`` = the photo's mean face grey level (about 119)
conscientiousness   sharpness: Gaussian blur of the face with ``sigma = 0.035 (1 - s)`` face
                    widths (0 to about 2 pixels of a 48x48 crop)
openness            side shadow: the sides of the face (cheeks, temples) are darkened,
                    ``p -> p (1 - a v(x))`` with opacity ``a = 0.8 (1 - s)`` and
                    ``v(x) = clip((|x| - 0.55) / 0.35, 0, 1)``, ``x`` the horizontal offset
                    from the face centre in half face widths; eyes, nose and mouth untouched
==================  ===========================================================================

``interview`` is ``clip(mean of the five labels + Normal(0, 0.02), 0, 1)``.

The noise ``e`` is the *noise floor*: even a model that recovered every factor exactly
would have an MSE of about ``0.02**2 = 0.0004`` and a mean absolute error of about
``0.02 * sqrt(2 / pi) = 0.016`` (challenge accuracy 1 - MAE about 0.984).
``noise_floor(DIR)`` computes it from ``demo_factors.json``.

A dark band over the mouth and chin would be a more obvious "openness" cue, but the
Haar face detector needs the lower face: over the extremes of the other factors, a
40 %-opaque band already cut detections to about 40 % of frames, which would leak the
label through missing faces. The side shadow leaves detection untouched (measured on
the default 200 clips through ``helpers.faces.video_to_faces``: the face was found in
all 5986 sampled frames where it is present, and in none of 171 frames where it is absent).

Nuisance, independent of the labels (separate random streams, keyed by video and clip
number, never by the labels or the split): background
(``synthetic.gradient_background``, one per video id), face width 70-110 px in 320x240
frames, face position, a slow drift, clip length (30 fps; about 1 clip in 10 has 20-31
frames, the rest 40-150) and, in 5 % of clips, a stretch of 25-50 % of the clip where
the person has left the frame (background only; drawn over the sorted clip names).

Person groups (``make_demo_dataset(..., groups=True)``, ``demo-data --groups``; for an audit by
group): each person (video id) is in group A or B, drawn from its own stream, never from the
labels or splits; B holds ``GROUP_B_SHARE`` (22 %) of the people. B stands in for a perceived
attribute (gender, ethnicity, age group) that raters see: it is rendered as a dark fringe, the top
of the head down to ``FRINGE_DEPTH`` (0.15) face heights below the face box's top darkened by
``FRINGE_OPACITY`` (0.6), which shows in the 48x48 crops and leaves the eyes and the detector
alone (tests/test_demo.py). The planted rater bias: B's labels are its true labels (those of the
same seed without groups, recorded as ``true_labels`` in ``demo_factors.json``) plus
``RATER_BIAS`` (-0.04 on agreeableness and conscientiousness), clipped to [0, 1]. The group
file ``groups.csv`` (``helpers.audit.read_groups``) lists each video's group. Clips, splits,
factors and the other labels are those of the same seed without groups.

Everything is deterministic in the seed: the same seed gives the same labels and the
same decoded frames, whatever the number of worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from helpers import SPLITS, TRAITS
from helpers import labels as lb
from helpers.audit import write_groups
from helpers.dataset import DATASET_FILE, write_dataset_kind
from helpers.demo_labels import BETWEEN_SD, NOISE_STD, WITHIN_SD, demo_annotations, draw_demo_labels
from helpers.faces import find_face, load_face_cascade
from helpers.synthetic import PHOTO_FACE_BOX, HeadSprite, box_iou, gradient_background, head_patch, load_face_photo, write_video

#: Frame size (width, height) and rate of the demo clips.
FRAME_WIDTH, FRAME_HEIGHT = 320, 240
FPS = 30.0
#: Head roll amplitude (degrees) and its frequency range (cycles per clip) for extraversion 0 and 1.
ROLL_AMPLITUDE = 14.0
ROLL_CYCLES = (1.0, 6.0)
#: Brightness offset (grey levels), contrast gain, blur sigma (face widths), side-shadow opacity.
BRIGHTNESS_RANGE = (-50.0, 50.0)
CONTRAST_RANGE = (0.55, 1.45)
MAX_BLUR = 0.035
MAX_SHADOW = 0.8
#: Side shadow ramp: none within SHADOW_START half face widths of the centre, full SHADOW_RAMP further out.
SHADOW_START = 0.55
SHADOW_RAMP = 0.35
#: Share of clips in which the person leaves the frame for part of the clip.
ABSENT_SHARE = 0.05
#: How long the person is away (seconds), and the least time in view before and after. Longer
#: than ``helpers.faces.MAX_GAP_SECONDS`` and inside the clip, so the face pipeline must not
#: bridge it: every frame of an absence stays unusable (masked), as it would on real footage.
ABSENT_SECONDS = (2.0, 2.5)
ABSENT_MARGIN_SECONDS = 0.3

#: The person groups of ``make_demo_dataset(..., groups=True)`` (notebook 08): a stand-in for a
#: perceived attribute (gender, ethnicity, age group) that raters see and that enters their scores.
#: Group B, about ``GROUP_B_SHARE`` of the people, wears a dark fringe of hair over the forehead:
#: the top ``FRINGE_DEPTH`` of the face box darkened by ``FRINGE_OPACITY`` (eyebrows and eyes untouched).
PERSON_GROUPS = ("A", "B")
GROUP_B_SHARE = 0.22
FRINGE_DEPTH = 0.15
FRINGE_OPACITY = 0.6
#: The planted rater bias: group B's rated labels are its true labels plus this, per trait.
RATER_BIAS = {"agreeableness": -0.04, "conscientiousness": -0.04}
#: The group file ``make_demo_dataset(..., groups=True)`` writes (``helpers.audit.read_groups``).
GROUPS_FILE = "groups.csv"

#: Group folder prefix of each split, as in the real archives (``training80_01``...).
GROUP_PREFIX = {"train": "training80", "validation": "validation80", "test": "test80"}
GROUP_SIZE = 80
#: Annotation file of each split, beside the split folders.
ANNOTATION_FILES = {"train": "annotation_training.pkl", "validation": "annotation_validation.pkl", "test": "annotation_test.pkl"}
FACTORS_FILE = "demo_factors.json"
#: The ``kind`` the demo dataset records in ``helpers.dataset.DATASET_FILE`` (what prepare reads).
DATASET_KIND = "demo"
#: Version of the demo dataset's design, recorded in ``demo_factors.json`` (2: labels per person, shared splits;
#: 3: head roll of 14 degrees, not 8; 4: the folder says its kind in ``dataset.json``, same clips and labels).
DEMO_VERSION = 4

# Random stream numbers of the nuisance (helpers.demo_labels draws the plan and labels from its own, 10-12).
_STREAM_ABSENT, _STREAM_CLIP, _STREAM_VIDEO, _STREAM_GROUP = 0, 2, 3, 4


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to draw one demo clip and its labels (no pixels)."""

    name: str                      #: file name, e.g. ``J4GQm9j0JZ0.003.mp4``
    video_id: str
    split: str                     #: ``train``, ``validation`` or ``test``
    group: str                     #: e.g. ``training80_01``
    index: int                     #: position in the whole dataset (keys the random streams)
    video_index: int
    n_frames: int
    person: dict[str, float]       #: the person's (video's) scores, shared by its clips (not clipped)
    scores: dict[str, float]       #: noiseless scores, one per trait
    noise: dict[str, float]        #: label noise, one per trait
    labels: dict[str, float]       #: clip(scores + noise, 0, 1): what the annotation files hold
    interview: float
    factors: dict[str, float]      #: the visual factors the scores set (``factors_from_scores``)
    face_width: float              #: pixels
    center: tuple[float, float]    #: face centre at mid-clip, pixels
    drift: tuple[float, float]     #: face centre moves by this much over the clip, pixels
    absent: tuple[int, int] | None  #: frames [start, stop) without the face, or None
    person_group: str | None = None  #: ``PERSON_GROUPS`` member when built with groups, else None
    true_labels: dict[str, float] | None = None  #: with groups: the labels before the rater bias

    @property
    def relpath(self) -> str:
        """Path of the clip below the dataset folder, e.g. ``train/training80_01/x.000.mp4``."""
        return f"{self.split}/{self.group}/{self.name}"


def factors_from_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """The visual factors set by noiseless trait scores in [0, 1] (formulas in the module docstring)."""
    s = {t: float(scores[t]) for t in TRAITS}
    lo, hi = ROLL_CYCLES
    b0, b1 = BRIGHTNESS_RANGE
    c0, c1 = CONTRAST_RANGE
    return {
        "roll_cycles_per_clip": lo + (hi - lo) * s["extraversion"],
        "brightness_offset": b0 + (b1 - b0) * s["neuroticism"],
        "contrast_gain": c0 + (c1 - c0) * s["agreeableness"],
        "blur_sigma_face_widths": MAX_BLUR * (1.0 - s["conscientiousness"]),
        "side_shadow_opacity": MAX_SHADOW * (1.0 - s["openness"]),
    }


def scores_from_factors(factors: Mapping[str, float]) -> dict[str, float]:
    """Inverse of ``factors_from_scores``: the noiseless scores a set of factors stands for."""
    lo, hi = ROLL_CYCLES
    b0, b1 = BRIGHTNESS_RANGE
    c0, c1 = CONTRAST_RANGE
    return {
        "extraversion": (factors["roll_cycles_per_clip"] - lo) / (hi - lo),
        "neuroticism": (factors["brightness_offset"] - b0) / (b1 - b0),
        "agreeableness": (factors["contrast_gain"] - c0) / (c1 - c0),
        "conscientiousness": 1.0 - factors["blur_sigma_face_widths"] / MAX_BLUR,
        "openness": 1.0 - factors["side_shadow_opacity"] / MAX_SHADOW,
    }


def plan_demo_dataset(n_clips: int = 200, seed: int = 0, groups: bool = False) -> list[ClipPlan]:
    """Decide every clip of the demo dataset (names, splits, labels, factors), drawing nothing.

    Deterministic in ``(n_clips, seed)``. Names, videos, official splits and labels come from
    ``helpers.demo_labels.draw_demo_labels``; lengths, sizes, positions and roll phases from
    one random stream per (video, clip number), the face absences from another over the
    sorted clip names: none of them can carry information about the labels or the split.
    ``groups``: also give each person a group (``with_person_groups``); everything else stays
    the same, clip for clip.
    """
    clips = draw_demo_labels(n_clips, seed)  # checks n_clips and seed
    plans: list[ClipPlan] = []
    position_in_split = {s: 0 for s in SPLITS}
    for clip in clips:
        split, number = clip.split, int(clip.name.split(".")[1])
        group = f"{GROUP_PREFIX[split]}_{position_in_split[split] // GROUP_SIZE + 1:02d}"
        position_in_split[split] += 1
        video_rng = np.random.default_rng([seed, _STREAM_VIDEO, clip.video_index])
        base_width = video_rng.uniform(75.0, 105.0)
        base_x = FRAME_WIDTH / 2 + video_rng.uniform(-35.0, 35.0)
        base_y = FRAME_HEIGHT / 2 + video_rng.uniform(-8.0, 8.0)
        rng = np.random.default_rng([seed, _STREAM_CLIP, clip.video_index, number])
        n_frames = int(rng.integers(20, 32) if rng.random() < 0.1 else rng.integers(40, 151))
        width = float(np.clip(base_width * rng.uniform(0.95, 1.05), 70.0, 110.0))
        center = (float(base_x + rng.uniform(-5, 5)), float(base_y + rng.uniform(-4, 4)))
        drift = (float(rng.uniform(-8, 8)), float(rng.uniform(-4, 4)))
        phase = float(rng.uniform(0, 2 * np.pi))
        factors = factors_from_scores(clip.scores)
        factors["roll_phase"] = phase
        factors["roll_amplitude_deg"] = ROLL_AMPLITUDE
        plans.append(ClipPlan(
            name=clip.name, video_id=clip.video_id, split=split, group=group, index=clip.index,
            video_index=clip.video_index, n_frames=n_frames, person=clip.person, scores=clip.scores,
            noise=clip.noise, labels=clip.labels, interview=clip.interview, factors=factors, face_width=width,
            center=center, drift=drift, absent=None,
        ))
    plans = _with_absences(plans, seed)
    return with_person_groups(plans, seed) if groups else plans


def with_person_groups(plans: list[ClipPlan], seed: int) -> list[ClipPlan]:
    """``plans`` with a person group each, the fringe on group B, and the rater bias in B's labels.

    ``round(GROUP_B_SHARE * videos)`` videos, drawn from their own stream (never from the
    labels or the splits, which are made before), are group B. A clip's ``true_labels`` are its
    labels as drawn; its ``labels`` (what the annotation files hold) add ``RATER_BIAS`` for
    group B, clipped to [0, 1]. ``interview`` is left as drawn.
    """
    videos = sorted({p.video_index for p in plans})
    rng = np.random.default_rng([seed, _STREAM_GROUP])
    in_b = set(rng.choice(videos, size=round(GROUP_B_SHARE * len(videos)), replace=False).tolist())
    out = []
    for p in plans:
        b = p.video_index in in_b
        shift = RATER_BIAS if b else {}
        labels = {t: float(np.clip(v + shift.get(t, 0.0), 0.0, 1.0)) for t, v in p.labels.items()}
        out.append(replace(p, person_group=PERSON_GROUPS[b], true_labels=p.labels, labels=labels,
                           factors={**p.factors, "fringe_opacity": FRINGE_OPACITY if b else 0.0}))
    return out


def _with_absences(plans: list[ClipPlan], seed: int) -> list[ClipPlan]:
    """``plans`` with ``ABSENT_SHARE`` of the clips long enough for it showing nobody for a while.

    Drawn from their own stream over the sorted clip names and lengths, so absences carry
    nothing about labels or splits.
    """
    margin = round(ABSENT_MARGIN_SECONDS * FPS)
    shortest = round(ABSENT_SECONDS[1] * FPS) + 2 * margin
    eligible = sorted(p.name for p in plans if p.n_frames >= shortest)
    rng = np.random.default_rng([seed, _STREAM_ABSENT])
    chosen = rng.choice(len(eligible), size=min(len(eligible), round(ABSENT_SHARE * len(plans))), replace=False)
    absences = {}
    for name in sorted(eligible[i] for i in chosen):
        n_frames = next(p.n_frames for p in plans if p.name == name)
        stretch = int(rng.integers(round(ABSENT_SECONDS[0] * FPS), round(ABSENT_SECONDS[1] * FPS) + 1))
        start = int(rng.integers(margin, n_frames - margin - stretch + 1))
        absences[name] = (start, start + stretch)
    return [replace(p, absent=absences.get(p.name)) for p in plans]


# ----------------------------------------------------------------------------- drawing


@lru_cache(maxsize=1)
def _photo_face_mean() -> float:
    """Mean grey level of the face box of the photo (``M`` of the contrast formula)."""
    fx, fy, fw, fh = PHOTO_FACE_BOX
    return float(cv2.cvtColor(load_face_photo(), cv2.COLOR_BGR2GRAY)[fy:fy + fh, fx:fx + fw].mean())


def style_head(patch: np.ndarray, face_box, factors: Mapping[str, float]) -> np.ndarray:
    """Apply a clip's brightness, contrast, side shadow, blur (and fringe, with groups) to a head patch (BGR uint8).

    ``face_box`` (x, y, w, h) is the face inside ``patch``; the blur sigma and the shadow
    are measured in face widths, so the result does not depend on the patch's scale.
    """
    fx, fy, fw, fh = face_box
    mean = _photo_face_mean()
    img = patch.astype(np.float32)
    img = mean + factors["brightness_offset"] + factors["contrast_gain"] * (img - mean)
    x = np.abs((np.arange(patch.shape[1], dtype=np.float32) + 0.5 - (fx + fw / 2)) / (fw / 2))
    shade = 1.0 - factors["side_shadow_opacity"] * np.clip((x - SHADOW_START) / SHADOW_RAMP, 0.0, 1.0)
    img *= shade[None, :, None]
    fringe = factors.get("fringe_opacity", 0.0)  # only in datasets built with groups
    if fringe > 0:
        top = int(round(fy))
        img[: top + int(round(FRINGE_DEPTH * fh))] *= 1.0 - fringe
    sigma = factors["blur_sigma_face_widths"] * fw
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def roll_angles(n_frames: int, cycles: float, phase: float, amplitude: float = ROLL_AMPLITUDE) -> np.ndarray:
    """Head roll (degrees) of each frame: ``amplitude * sin(2 pi cycles i / n + phase)``."""
    i = np.arange(n_frames, dtype=np.float64)
    return amplitude * np.sin(2 * np.pi * cycles * i / n_frames + phase)


@lru_cache(maxsize=4)
def _background(seed: int, video_index: int) -> np.ndarray:
    img = gradient_background(FRAME_HEIGHT, FRAME_WIDTH, np.random.default_rng([seed, _STREAM_VIDEO, video_index, 1]))
    img.setflags(write=False)
    return img


def clip_background(plan: ClipPlan, seed: int) -> np.ndarray:
    """The background of the clip's video (one 'room' per video id; read-only, shared)."""
    return _background(seed, plan.video_index)


def face_centers(plan: ClipPlan) -> list[tuple[float, float] | None]:
    """Where the face centre is in each frame of the clip (pixels); None while the face is absent."""
    centers: list[tuple[float, float] | None] = []
    for i in range(plan.n_frames):
        if plan.absent is not None and plan.absent[0] <= i < plan.absent[1]:
            centers.append(None)
            continue
        t = i / max(1, plan.n_frames - 1) - 0.5  # drift runs from -drift/2 to +drift/2
        centers.append((plan.center[0] + plan.drift[0] * t, plan.center[1] + plan.drift[1] * t))
    return centers


def face_boxes(plan: ClipPlan) -> list[tuple[float, float, float, float] | None]:
    """The true face box (x, y, w, h) of each frame, as ``render_clip`` yields it, without drawing."""
    _, (fx, fy, fw, fh) = head_patch(load_face_photo())
    w, h = plan.face_width, fh * plan.face_width / fw
    return [None if c is None else (c[0] - w / 2, c[1] - h / 2, w, h) for c in face_centers(plan)]


def render_clip(plan: ClipPlan, seed: int = 0) -> Iterator[tuple[np.ndarray, tuple[float, float, float, float] | None]]:
    """Yield ``(frame, face box)`` for every frame of the clip; the box is None while the face is absent.

    ``seed`` must be the seed the plan was made with (it picks the background).
    """
    background = clip_background(plan, seed)
    sprite = HeadSprite(plan.face_width, style=lambda patch, box: style_head(patch, box, plan.factors))
    angles = roll_angles(plan.n_frames, plan.factors["roll_cycles_per_clip"], plan.factors["roll_phase"],
                         plan.factors["roll_amplitude_deg"])
    for center, angle in zip(face_centers(plan), angles):
        if center is None:
            yield background.copy(), None
        else:
            yield sprite.paste(background, center, float(angle))


# ----------------------------------------------------------------------------- writing


def _detector_available() -> bool:
    """Whether this OpenCV has the Haar cascade ``helpers.faces`` uses (5.x wheels have none)."""
    try:
        load_face_cascade()
    except (ImportError, OSError):
        return False
    return True


def _face_boxes_detected(frames: Mapping[int, np.ndarray], boxes: Mapping[int, tuple]) -> int:
    """How many of ``frames`` have the face ``helpers.faces.find_face`` finds overlapping the true box (IoU >= 0.3)."""
    hits = 0
    for i, frame in frames.items():
        found = find_face(frame)
        hits += found is not None and box_iou(found, boxes[i]) >= 0.3
    return int(hits)


def _write_clip(job: tuple[ClipPlan, int, str, int]) -> dict:
    """Draw and write one clip; decode ``check`` frames back and run the face detector on them."""
    plan, seed, root, check = job
    path = Path(root) / plan.relpath
    boxes: dict[int, tuple] = {}

    def frames():
        for i, (frame, box) in enumerate(render_clip(plan, seed)):
            if box is not None:
                boxes[i] = box
            yield frame

    written = write_video(path, frames(), FPS)
    result = {"name": plan.name, "frames": written, "checked": 0, "detected": 0, "bytes": path.stat().st_size}
    if check > 0 and boxes and _detector_available():
        present = np.array(sorted(boxes))
        wanted = set(present[np.unique(np.linspace(0, len(present) - 1, min(check, len(present))).round().astype(int))].tolist())
        cap = cv2.VideoCapture(str(path))
        decoded: dict[int, np.ndarray] = {}
        for i in range(max(wanted) + 1):
            if not cap.grab():
                break
            if i in wanted:
                ok, frame = cap.retrieve()
                if ok:
                    decoded[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        cap.release()
        result["checked"] = len(wanted)
        result["detected"] = _face_boxes_detected(decoded, boxes)
    return result


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _remove_previous(out_dir: Path) -> None:
    """Delete a previous demo dataset in ``out_dir`` (only the files it listed); refuse anything else."""
    factors = out_dir / FACTORS_FILE
    if factors.exists():
        _remove_listed(out_dir, json.loads(factors.read_text()))
        factors.unlink()
    ours = [*(out_dir / s for s in SPLITS), *(out_dir / a for a in ANNOTATION_FILES.values()), out_dir / DATASET_FILE]
    clashes = [p.name for p in ours if p.exists()]
    if clashes:
        raise FileExistsError(
            f"{out_dir} already holds {', '.join(clashes)} that the demo dataset did not write "
            f"(real data?); choose an empty folder"
        )


def _remove_listed(out_dir: Path, previous: dict) -> None:
    """Delete the clips, annotation files and marker a previous build listed, then its emptied folders."""
    root = out_dir.resolve()
    for clip in previous.get("clips", []):
        path = (out_dir / clip["path"]).resolve()
        if path.suffix == ".mp4" and root in path.parents:  # never outside out_dir
            path.unlink(missing_ok=True)
    for name in [*ANNOTATION_FILES.values(), DATASET_FILE, GROUPS_FILE]:
        (out_dir / name).unlink(missing_ok=True)
    for split in SPLITS:
        for folder in sorted((out_dir / split).glob("*/"), reverse=True) + [out_dir / split]:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _annotations(plans: list[ClipPlan], split: str) -> dict[str, dict[str, float]]:
    """One split's annotation dict in the real format: trait -> {clip file name: score}."""
    mine = sorted((p for p in plans if p.split == split), key=lambda p: p.name)
    ann: dict[str, dict] = {t: {p.name: float(p.labels[t]) for p in mine} for t in TRAITS}
    ann["interview"] = {p.name: np.float64(p.interview) for p in mine}
    return ann


def _default_workers(n_clips: int) -> int:
    return max(1, min(os.cpu_count() or 1, 4, n_clips // 20))


def _signed(value: float) -> str:
    """``value`` as the last term of a sum: ``+ 3`` or ``- 50``."""
    return f"- {-value:g}" if value < 0 else f"+ {value:g}"


def factor_formulas() -> dict[str, str]:
    """The label and factor formulas, as ``demo_factors.json`` records them, written from the constants."""
    lo, hi = ROLL_CYCLES
    b0, b1 = BRIGHTNESS_RANGE
    c0, c1 = CONTRAST_RANGE
    return {
        "person": f"one per video id: Normal(real training means, {BETWEEN_SD:g}^2 R), R positive correlations "
                  "(helpers/demo_labels.py)",
        "score": f"clip(person + deviation, 0, 1), deviation ~ Normal(0, {WITHIN_SD:g}^2 R) per clip: what the clip "
                 "shows",
        "label": "clip(score + noise, 0, 1), noise ~ Normal(0, noise_std): the part no clip shows",
        "extraversion": f"roll_cycles_per_clip = {lo:g} + {hi - lo:g} * score; angle(i) = {ROLL_AMPLITUDE:g} deg "
                        "* sin(2 pi cycles i / n + roll_phase)",
        "neuroticism": f"brightness_offset = {b1 - b0:g} * score {_signed(b0)} (grey levels)",
        "agreeableness": f"contrast_gain = {c0:g} + {c1 - c0:g} * score",
        "conscientiousness": f"blur_sigma_face_widths = {MAX_BLUR:g} * (1 - score)",
        "openness": f"side_shadow_opacity = {MAX_SHADOW:g} * (1 - score)",
        "interview": "clip(mean of the five labels + Normal(0, noise_std), 0, 1)",
    }


def _factors_doc(plans: list[ClipPlan], n_clips: int, seed: int, groups: bool = False) -> dict:
    """The ground truth ``demo_factors.json`` holds: version, seed, formulas, every clip's plan."""
    doc = {
        "about": "Ground truth of the synthetic demo dataset (helpers/demo.py). Training never reads this file; "
                 "benchmarks use it for the noise floor.",
        "version": DEMO_VERSION,
        "seed": seed,
        "n_clips": n_clips,
        "noise_std": NOISE_STD,
        "formulas": factor_formulas(),
        "clips": [dict(asdict(p), path=p.relpath) for p in plans],
    }
    if groups:
        doc["person_groups"] = {
            "groups": list(PERSON_GROUPS), "group_b_share": GROUP_B_SHARE, "rater_bias": RATER_BIAS,
            "group_file": GROUPS_FILE,
            "fringe": f"group B: top of the head to {FRINGE_DEPTH:g} face heights below the face box's top "
                      f"darkened by {FRINGE_OPACITY:g}",
            "labels": "group B: clip(true_labels + rater_bias, 0, 1); group A: true_labels",
        }
    return doc


def _write_clips(jobs: list[tuple[ClipPlan, int, str, int]], workers: int, progress: bool) -> list[dict]:
    """``_write_clip`` of every job, in this process or a pool of ``workers``; results in job order."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="demo clips", unit="clip", disable=not progress)
    results = []
    try:
        if workers == 1:
            for job in jobs:
                results.append(_write_clip(job))
                bar.update()
        else:
            # "spawn": forking a process whose OpenCV (or TensorFlow) thread pool is running can hang the child.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
                for result in pool.map(_write_clip, jobs, chunksize=4):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()
    return results


def _split_counts(plans: list[ClipPlan]) -> dict[str, dict[str, int]]:
    """Clips, videos and groups of each split."""
    return {
        s: {
            "clips": sum(p.split == s for p in plans),
            "videos": len({p.video_id for p in plans if p.split == s}),
            "groups": len({p.group for p in plans if p.split == s}),
        }
        for s in SPLITS
    }


def _videos_per_group(plans: list[ClipPlan]) -> dict[str, int] | None:
    """Videos (people) in each person group; None for a demo built without groups."""
    if plans[0].person_group is None:
        return None
    return {g: len({p.video_id for p in plans if p.person_group == g}) for g in PERSON_GROUPS}


def _summary(out_dir: Path, plans: list[ClipPlan], results: list[dict], seed: int, workers: int,
             start: float) -> dict:
    """What ``make_demo_dataset`` returns: counts, the face check, label figures, time and size."""
    checked = sum(r["checked"] for r in results)
    labels = np.array([[p.labels[t] for t in TRAITS] for p in plans])
    report = lb.label_report(demo_annotations(plans))
    size = sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())
    return {
        "out_dir": str(out_dir),
        "seed": seed,
        "clips": len(plans),
        "splits": _split_counts(plans),
        "frames": sum(r["frames"] for r in results),
        "frame_size": [FRAME_WIDTH, FRAME_HEIGHT],
        "fps": FPS,
        "clips_with_face_absent": sum(p.absent is not None for p in plans),
        "face_detection_rate": round(sum(r["detected"] for r in results) / checked, 4) if checked else None,
        "frames_checked": checked,
        "label_mean": {t: round(float(v), 4) for t, v in zip(TRAITS, labels.mean(axis=0))},
        "label_std": {t: round(float(v), 4) for t, v in zip(TRAITS, labels.std(axis=0))},
        "test_clips_with_video_in_training": round(report["clips_with_video_in_training"]["test"], 4),
        "test_baselines": {k: round(v, 4) for k, v in report["baselines"].items()},
        "noise_std": NOISE_STD,
        "person_groups": _videos_per_group(plans),
        "workers": workers,
        "seconds": round(time.perf_counter() - start, 2),
        "megabytes": round(size / 1e6, 2),
    }


def make_demo_dataset(
    out_dir: str | Path,
    n_clips: int = 200,
    seed: int = 0,
    progress: bool = True,
    workers: int | None = None,
    check_frames: int = 2,
    groups: bool = False,
) -> dict:
    """Write the demo dataset to ``out_dir`` (created); returns a summary dict (JSON-ready).

    ``workers`` processes draw and encode clips (default: up to 4, one per CPU); the
    output does not depend on it. ``check_frames`` frames per clip (outside planned
    absences) are decoded back and searched with ``helpers.faces.find_face`` (the pipeline's
    whole-frame search, retries included, one frame at a time: no following); the summary's
    ``face_detection_rate`` is the share found (0 frames: no check). A previous demo
    dataset in ``out_dir`` is replaced; a folder holding other split folders or annotation
    files is refused. The folder's ``dataset.json`` (``helpers.dataset.DATASET_FILE``),
    written last, says its kind is ``"demo"``.

    ``groups``: give each person a group (``with_person_groups``: group B under-represented,
    wearing a fringe, its labels shifted by ``RATER_BIAS``), record the true labels and the
    group of every clip in ``demo_factors.json`` and write the group file ``GROUPS_FILE``
    (``helpers.audit.read_groups``). The clips, splits and other labels are those of the
    same seed without groups.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous(out_dir)
    plans = plan_demo_dataset(n_clips, seed, groups=groups)
    # The plan is written first, so an interrupted build can be cleaned up by the next one.
    (out_dir / FACTORS_FILE).write_text(json.dumps(_factors_doc(plans, n_clips, seed, groups), indent=1))
    workers = _default_workers(n_clips) if workers is None else max(1, int(workers))
    results = _write_clips([(p, seed, str(out_dir), check_frames) for p in plans], workers, progress)
    for split in SPLITS:
        with open(out_dir / ANNOTATION_FILES[split], "wb") as f:
            pickle.dump(_annotations(plans, split), f, protocol=2)
    if groups:
        write_groups(out_dir / GROUPS_FILE, {p.video_id: p.person_group for p in plans})
    summary = _summary(out_dir, plans, results, seed, workers, start)
    summary["group_file"] = str(out_dir / GROUPS_FILE) if groups else None
    write_dataset_kind(out_dir, DATASET_KIND, made_by="helpers.demo", version=DEMO_VERSION)
    return summary

def load_demo_factors(root: str | Path) -> dict:
    """Read ``demo_factors.json`` of a demo dataset (for benchmarks; training must not use it)."""
    return json.loads((Path(root) / FACTORS_FILE).read_text())


def noise_floor(root: str | Path, split: str | None = "test") -> dict[str, float]:
    """Errors of a perfect model (predicting the noiseless scores) on ``split`` (None: all clips).

    Returns ``mse`` and ``mae`` over the five traits and ``accuracy`` = 1 - mae (the challenge metric).
    """
    clips = [c for c in load_demo_factors(root)["clips"] if split is None or c["split"] == split]
    if not clips:
        raise ValueError(f"no clips in split {split!r}")
    err = np.array([[c["labels"][t] - c["scores"][t] for t in TRAITS] for c in clips])
    mae = float(np.abs(err).mean())
    return {"mse": float((err**2).mean()), "mae": mae, "accuracy": 1.0 - mae, "clips": len(clips)}
