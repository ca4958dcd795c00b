"""Benchmark ``helpers.faces.video_to_faces`` against the original article's approach.

    python benchmarks/bench_faces.py [--repeat 3] [--fresh]

Makes (once, cached under benchmarks/out/) a 15 s, 1280x720, 30 fps clip of the bundled
face photo moving about and growing/shrinking between 80 and 200 px wide, with the true
face box of every frame known. Then times, in the same run:

(a) the article: read every frame, full-resolution grayscale Haar cascade
    (scaleFactor 1.1, minNeighbors 6, minSize 48x48), largest face per frame;
(b) decoding every frame, nothing else (the floor for any reader of the whole clip);
(c) ``video_to_faces(path)`` with its defaults (32 frames).

A hit is a frame whose *untrimmed detection box* (for (c): ``FaceSequence.boxes`` where
``found``; filled rows do not count) has IoU >= 0.5 with that frame's true box; the hit
rate of (a) is over every frame, that of (c) over its sampled frames. Targets:
c/a <= 1/15, c/b <= 2, hit rate (c) >= hit rate (a).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from helpers import faces, synthetic  # noqa: E402
from helpers.faces import load_face_cascade, video_to_faces  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 30, 15
IOU_HIT = 0.5


def face_track(n_frames: int) -> list[tuple[tuple[float, float], float, float]]:
    """(centre, face width, tilt in degrees) per frame: a slow wander, 80-200 px wide, tilting up to 4 degrees."""
    track = []
    for i in range(n_frames):
        t = i / FPS
        width = 140 - 60 * np.cos(2 * np.pi * t / 7.5)  # 80 -> 200 -> 80 px, twice
        cx = WIDTH / 2 + 380 * np.sin(2 * np.pi * t / 10)
        cy = HEIGHT / 2 + 150 * np.sin(2 * np.pi * t / 6 + 1.0)
        track.append(((cx, cy), width, 4 * np.sin(2 * np.pi * t / 5)))
    return track


def make_clip(path: Path, seed: int = 0) -> np.ndarray:
    """Write the benchmark clip to ``path``; returns the true boxes, float [n, 4]."""
    background = synthetic.gradient_background(HEIGHT, WIDTH, np.random.default_rng(seed))
    boxes = []

    def frames():
        for center, face_width, angle in face_track(FPS * SECONDS):
            frame, box = synthetic.place_face(background, center, face_width, angle)
            boxes.append(box)
            yield frame

    synthetic.write_video(path, frames(), FPS)
    return np.asarray(boxes, np.float64)


def clip(fresh: bool) -> tuple[Path, np.ndarray]:
    """The cached clip and its true boxes, made if missing (or ``fresh``)."""
    path, truth_path = OUT / "bench_faces_720p.mp4", OUT / "bench_faces_720p_boxes.npy"
    if fresh or not (path.exists() and truth_path.exists()):
        OUT.mkdir(parents=True, exist_ok=True)
        np.save(truth_path, make_clip(path))
    return path, np.load(truth_path)


def article(path: Path) -> list[np.ndarray | None]:
    """(a) The article's approach: every frame, full-resolution Haar; the largest box per frame."""
    cascade = load_face_cascade()
    cap = cv2.VideoCapture(str(path))
    boxes: list[np.ndarray | None] = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6, minSize=(48, 48))
        boxes.append(max(found, key=lambda b: b[2] * b[3]) if len(found) else None)
    cap.release()
    return boxes


def decode_only(path: Path) -> int:
    """(b) Decode every frame and do nothing with it; returns the frame count."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n


def hit_rate(boxes, truth: np.ndarray) -> float:
    """Share of rows whose box (None = no detection) has IoU >= 0.5 with the true box."""
    hits = [b is not None and synthetic.box_iou(b, t) >= IOU_HIT for b, t in zip(boxes, truth)]
    return float(np.mean(hits)) if hits else 0.0


def timed(fn, *args):
    """(wall seconds, CPU seconds of this process's threads, result) of ``fn(*args)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each method; medians are printed")
    parser.add_argument("--fresh", action="store_true", help="re-make the cached benchmark clip")
    args = parser.parse_args(argv)

    path, truth = clip(args.fresh)
    load_face_cascade()  # load once, outside every timing
    print(f"clip: {path.name}, {len(truth)} frames {WIDTH}x{HEIGHT} @ {FPS} fps, "
          f"face {truth[:, 2].min():.0f}-{truth[:, 2].max():.0f} px wide; repeat {args.repeat}")
    print(f"video_to_faces: detection width {faces.DETECT_WIDTH} px, scaleFactor {faces.SCALE_FACTOR} "
          f"(retry {faces.RETRY_SCALE_FACTOR}), minNeighbors {faces.MIN_NEIGHBORS}, "
          f"min face {faces.MIN_FACE_FRACTION:.3f} of the shorter side; OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads")

    # Wall time is what the targets are on; CPU time is printed too because this machine
    # may be shared, which stretches wall times but hardly CPU times.
    wall: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    cpu: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for _ in range(args.repeat):
        for key, fn in (("a", article), ("b", decode_only), ("c", video_to_faces)):
            w, t, result = timed(fn, path)
            wall[key].append(w)
            cpu[key].append(t)
            if key == "a":
                boxes_a = result
            elif key == "b":
                n_decoded = result
            else:
                seq = result
    a, b, c = (statistics.median(wall[k]) for k in "abc")
    ca, cb, cc = (statistics.median(cpu[k]) for k in "abc")

    hits_a = hit_rate(boxes_a, truth)
    boxes_c = [box if ok else None for box, ok in zip(seq.boxes, seq.found)]
    hits_c = hit_rate(boxes_c, truth[seq.frame_indices])
    print("median wall s (CPU s)")
    print(f"(a) article, every frame, full-res Haar : {a:7.3f} ({ca:7.3f})  hit rate {hits_a:6.1%} of {len(boxes_a)} frames")
    print(f"(b) decode every frame only            : {b:7.3f} ({cb:7.3f})  {n_decoded / b:.0f} frames/s")
    print(f"(c) video_to_faces (defaults)          : {c:7.3f} ({cc:7.3f})  hit rate {hits_c:6.1%} of {len(seq)} sampled frames")
    print(f"c/a = {c / a:.4f} = 1/{a / c:.1f} (target <= 1/15; CPU 1/{ca / cc:.1f})   "
          f"c/b = {c / b:.2f} (target <= 2; CPU {cc / cb:.2f})   hit rate c - a = {hits_c - hits_a:+.1%} (target >= 0)")
    ok = c / a <= 1 / 15 and c / b <= 2 and hits_c >= hits_a
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
