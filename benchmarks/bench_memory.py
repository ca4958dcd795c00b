"""Benchmark the peak memory of ``helpers.faces.video_to_faces`` on long clips and 4K frames.

    python benchmarks/bench_memory.py [--num-frames 32] [--fresh]

Claim checked: reading a clip never holds all its frames. ``video_to_faces`` walks the
clip once with ``grab()`` and keeps only the ``--num-frames`` sampled frames (grayscale), so
its peak memory depends on the frame size and ``--num-frames``, not on the clip's length.

Makes (once, cached under benchmarks/out/, which is git-ignored) three mp4v clips of the
bundled face photo drifting over a gradient background, 30 fps:

- ``long10``: 10 s of 640x360 (300 frames);
- ``long60``: 60 s of 640x360 (1800 frames);
- ``uhd4``:   4 s of 3840x2160 (120 frames).

Then, for each clip, every measurement runs in its own fresh subprocess and reports its
peak RSS: ``VmHWM`` of ``/proc/self/status``, the high-water mark of the process image
since its ``exec``. (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is printed beside it
as ``maxrss_mb``, but on Linux it is not reset by ``exec``: a child's figure starts at the
RSS its parent had when it forked, so it over-states a lean child of a big parent.)

- ``import``:   ``import helpers.faces`` (numpy, OpenCV, the cascade) and nothing else;
- ``baseline``: that, plus opening the clip and decoding its first frame (the decoder's
  own buffers at this frame size): the floor for any reader of this clip;
- ``faces``:    that import, plus ``video_to_faces(clip, num_frames=--num-frames)``.

Printed per clip: ``all_frames_mb`` (what holding every decoded BGR frame would take,
n * w * h * 3 bytes), ``sampled_mb`` (the sampled grayscale frames,
frames * w * h), the peaks, ``extra_mb`` = faces - baseline, and the ratios
``extra / all_frames`` and ``extra / sampled``.
Targets: the 60 s clip's ``faces`` peak within 10 % of the 10 s clip's (memory does not
grow with length); ``extra`` well below ``all_frames`` on the long clips and the 4K clip.
Linux (``ru_maxrss`` in KiB).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere without installing

OUT = Path(__file__).resolve().parent / "out"
FPS = 30
#: name -> (width, height, seconds)
CLIPS: dict[str, tuple[int, int, int]] = {
    "long10": (640, 360, 10),
    "long60": (640, 360, 60),
    "uhd4": (3840, 2160, 4),
}
MB = 1024 * 1024


def make_clip(path: Path, width: int, height: int, seconds: int, seed: int = 0) -> int:
    """Write the clip frame by frame (never all in memory); returns its frame count."""
    import numpy as np

    from helpers import synthetic

    background = synthetic.gradient_background(height, width, np.random.default_rng(seed))

    def frames():
        for i in range(FPS * seconds):
            t = i / FPS
            center = (width / 2 + 0.25 * width * np.sin(2 * np.pi * t / 5), height / 2 + 0.1 * height * np.cos(2 * np.pi * t / 3))
            yield synthetic.place_face(background, center, 0.3 * height)[0]

    tmp = path.with_suffix(".part.mp4")
    n = synthetic.write_video(tmp, frames(), FPS)
    tmp.replace(path)
    return n


def clip_path(name: str, fresh: bool) -> Path:
    """The cached clip ``name``, made if missing (or ``fresh``)."""
    width, height, seconds = CLIPS[name]
    path = OUT / f"bench_memory_{name}_{width}x{height}_{seconds}s.mp4"
    if fresh or not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        make_clip(path, width, height, seconds)
        print(f"made {path.name} in {time.perf_counter() - start:.1f} s", flush=True)
    return path


def child(mode: str, path: str, frames: int) -> None:
    """Run in a fresh process: do ``mode`` and print one JSON line with the peak RSS."""
    import resource

    import cv2

    from helpers.faces import load_face_cascade, video_to_faces
    from helpers.video import read_frames

    load_face_cascade()
    result: dict[str, object] = {"mode": mode}
    start = time.perf_counter()
    if mode == "baseline":
        first, _ = read_frames(path, [0])
        result["frame_shape"] = list(first.shape)
    elif mode == "faces":
        seq = video_to_faces(path, num_frames=frames)
        result["rows"], result["found"] = len(seq), int(seq.found.sum())
    elif mode != "import":
        raise ValueError(mode)
    result["seconds"] = round(time.perf_counter() - start, 2)
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_mb"] = peak_rss_mb()
    result["opencv_threads"] = cv2.getNumThreads()
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """This process image's peak RSS in MB: ``VmHWM`` (Linux), else ``ru_maxrss``."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024
    except (OSError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def measure(mode: str, path: Path, frames: int) -> dict:
    """Peak RSS of ``mode`` in a fresh subprocess."""
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(path), "--num-frames", str(frames)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-frames", type=int, default=32, help="frames sampled per clip (default 32)")
    parser.add_argument("--fresh", action="store_true", help="re-make the cached clips")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.num_frames)
        return 0

    import cv2

    from helpers.video import read_video_info

    paths = {name: clip_path(name, args.fresh) for name in CLIPS}
    imported = measure("import", paths["long10"], args.num_frames)
    print(f"OpenCV {cv2.__version__}; video_to_faces(num_frames={args.num_frames}); peak RSS per fresh process")
    print(f"import helpers.faces alone: {imported['peak_mb']:.0f} MB")
    header = (f"{'clip':<8} {'frames':>6} {'size':>10} {'all_frames_mb':>13} {'sampled_mb':>10} "
              f"{'baseline_mb':>11} {'faces_mb':>8} {'extra_mb':>8} {'extra/all':>9} {'extra/sampled':>13} {'seconds':>7}")
    print(header)
    rows = {}
    for name, path in paths.items():
        info = read_video_info(path)
        base = measure("baseline", path, args.num_frames)
        faces = measure("faces", path, args.num_frames)
        all_mb = info.frame_count * info.width * info.height * 3 / MB
        sampled_mb = min(args.num_frames, info.frame_count) * info.width * info.height / MB
        extra = faces["peak_mb"] - base["peak_mb"]
        rows[name] = {"faces": faces["peak_mb"], "extra": extra, "all": all_mb}
        print(f"{name:<8} {info.frame_count:>6} {f'{info.width}x{info.height}':>10} {all_mb:>13.0f} {sampled_mb:>10.0f} "
              f"{base['peak_mb']:>11.0f} {faces['peak_mb']:>8.0f} {extra:>8.0f} {extra / all_mb:>9.3f} "
              f"{extra / sampled_mb:>13.2f} {faces['seconds']:>7.1f}")
    growth = rows["long60"]["faces"] / rows["long10"]["faces"]
    print(f"60 s vs 10 s clip, faces peak: x{growth:.3f} (target <= 1.10: memory does not grow with length)")
    for name in ("long60", "uhd4"):
        print(f"{name}: extra memory is {rows[name]['extra'] / rows[name]['all']:.1%} of holding every frame")
    ok = growth <= 1.10 and all(rows[n]["extra"] < 0.5 * rows[n]["all"] for n in ("long60", "uhd4"))
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
