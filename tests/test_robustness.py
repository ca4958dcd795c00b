"""Hostile and broken inputs, end to end: ``video_to_faces``, ``prepare`` (API and CLI) and ``train``.

The unit tests of each module (test_video, test_faces, test_dataset, test_prepare,
test_training) check each defence on its own; this file feeds a whole dataset folder
of bad inputs through the public API and ``python -m helpers`` and checks that every
input gets its documented outcome (an error naming the file, a warning, a counted skip
or a status) and that no good clip is lost.

Inputs are made here, small, in tmp_path: clips with ``helpers.synthetic``; broken
headers by patching the bytes OpenCV wrote (AVI 'avih'/'strh' fields, mp4 'mdhd'
time scale); truncated mp4s both as OpenCV writes them (index at the end) and
"fast start" (index first, as web downloads are).

Set ``ROBUSTNESS_REPORT=path.json`` to write the outcome of every input tried (the
README's Reliability table is made from it).
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import pickle
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import TRAITS
from helpers.cache import CacheFileError, clip_cache_path, load_clip_cache, read_manifest
from helpers.prepare import prepare
from helpers.archives import UnsafeArchiveError
from helpers.dataset import AnnotationFileError, load_annotations
from helpers.faces import video_to_faces
from helpers.synthetic import box_iou, gradient_background, place_face, write_video
from helpers.video import DEFAULT_FPS, MAX_FPS, MIN_FPS, VideoReadError, uniform_frame_indices

REPO = Path(__file__).resolve().parent.parent
FRAMES, SIZE = 8, 32  # prepare settings used here: small and fast

# --------------------------------------------------------------------------- outcome log

OUTCOMES: list[dict] = []


def record(case: str, via: str, outcome: str, lost: int = 0) -> None:
    """Log one input's outcome (called only after its assertions passed)."""
    OUTCOMES.append({"case": case, "via": via, "outcome": outcome, "files_lost": lost})


@pytest.fixture(scope="module", autouse=True)
def _write_report():
    yield
    target = os.environ.get("ROBUSTNESS_REPORT")
    if target:
        Path(target).write_text(json.dumps(OUTCOMES, indent=1, ensure_ascii=False), encoding="utf-8")


# --------------------------------------------------------------------------- making inputs


def face_frames(n: int, seed: int, size=(96, 96), face: bool = True, gray: bool = False):
    """n frames of the face photo drifting over a random background (or the background alone)."""
    h, w = size
    background = gradient_background(h, w, np.random.default_rng(seed))
    for i in range(n):
        frame = place_face(background, (w / 2 + 3 * np.sin(i / 2), h / 2 + 2), 0.46 * min(h, w))[0] if face else background
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if gray else frame


def face_clip(path: Path, n: int = 12, seed: int = 0, fourcc: str = "mp4v", **kw) -> Path:
    write_video(path, face_frames(n, seed, **kw), 15, fourcc)
    return path


def decoded_count(path: Path) -> int:
    """Reference: frames OpenCV really decodes (grab until it fails)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def opencv_header(path: Path) -> tuple[float, float]:
    """(fps, frame count) as OpenCV reports them."""
    cap = cv2.VideoCapture(str(path))
    try:
        return cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()


def patch_avi(data: bytes, **fields: int) -> bytes:
    """Set AVI header fields (little-endian u32) found through their RIFF chunks.

    'avih' (AVIMAINHEADER): usec_per_frame +0, total_frames +16.
    'strh' (AVISTREAMHEADER of the video stream): scale +20, rate +24, length +32.
    """
    where = {"usec_per_frame": (b"avih", 0), "total_frames": (b"avih", 16),
             "scale": (b"strh", 20), "rate": (b"strh", 24), "length": (b"strh", 32)}
    out = bytearray(data)
    for name, value in fields.items():
        chunk, offset = where[name]
        start = data.index(chunk, 0, 4096) + 8  # chunk id, u32 size, then the header itself
        if chunk == b"strh":
            assert data[start:start + 4] == b"vids"
        out[start + offset:start + offset + 4] = struct.pack("<I", value)
    return bytes(out)


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, offset, size) of the boxes from ``start`` to ``end``."""
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        size = struct.unpack(">Q", data[i + 8:i + 16])[0] if size == 1 else (end - i if size == 0 else size)
        yield kind, i, size
        i += size


def patch_mp4_timescale_zero(data: bytes) -> bytes:
    """The video track's 'mdhd' time scale set to 0 (its fps is then 0 / undefined), edit list dropped.

    FFmpeg warns "Invalid mdhd time scale 0, defaulting to 1"; the edit list ('edts',
    renamed 'free' so it is skipped) would otherwise cut the clip to its first frames.
    """
    out = bytearray(data)
    i = data.index(b"mdhd")
    assert data[i + 4] == 0  # version 0: u32 creation, modification, time scale, duration
    out[i + 16:i + 20] = struct.pack(">I", 0)
    j = data.find(b"edts")
    if j != -1:
        out[j:j + 4] = b"free"
    return bytes(out)


def faststart(data: bytes) -> bytes:
    """Move 'moov' (the index) before 'mdat', fixing chunk offsets: how web-ready mp4s are laid out."""
    top = list(mp4_boxes(data))
    assert top[0][0] == b"ftyp"
    _, mi, ms = next(b for b in top if b[0] == b"moov")
    moov = bytearray(data[mi:mi + ms])
    j = moov.find(b"stco")
    assert j != -1 and moov.find(b"stco", j + 4) == -1  # one track
    count = struct.unpack(">I", moov[j + 8:j + 12])[0]
    for k in range(count):
        o = j + 12 + 4 * k
        moov[o:o + 4] = struct.pack(">I", struct.unpack(">I", moov[o:o + 4])[0] + ms)
    rest = b"".join(data[i:i + s] for t, i, s in top[1:] if t != b"moov")
    return data[:top[0][2]] + bytes(moov) + rest


def annotation_bytes(scores: dict[str, float]) -> bytes:
    """Real-format annotation pickle (protocol 2; 'interview' as numpy.float64)."""
    table = {t: {c: float(s) for c, s in scores.items()} for t in TRAITS}
    table["interview"] = {c: np.float64(s) for c, s in scores.items()}
    return pickle.dumps(table, protocol=2)


def cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, **kw)


class FifoGuard:
    """Unblocks anyone stuck opening ``fifo`` for reading (opens its write end), and tells."""

    def __init__(self, fifo: Path):
        self.fifo, self.unblocked, self._stop = fifo, False, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while no reader waits
            except OSError:
                continue
            self.unblocked = True
            os.close(fd)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- unreadable files


def _empty(d: Path) -> Path:
    (p := d / "empty.001.mp4").write_bytes(b"")
    return p


def _text(d: Path) -> Path:
    (p := d / "notes.001.mp4").write_text("not a video, only text\n" * 20)
    return p


def _dangling_link(d: Path) -> Path:
    (p := d / "dangling.001.mp4").symlink_to(d / "deleted" / "clip.mp4")
    return p


def _fifo(d: Path) -> Path:
    os.mkfifo(p := d / "fifo.001.mp4")
    return p


def _device_link(d: Path) -> Path:
    (p := d / "zeros.001.mp4").symlink_to("/dev/zero")
    return p


def _truncated_index_at_end(d: Path) -> Path:
    """An mp4 as OpenCV writes it (index after the frames), cut at 90%: the index is gone."""
    data = face_clip(d / ".scratch" / "a.mp4", 12, seed=7).read_bytes()
    (p := d / "cut index.001.mp4").write_bytes(data[: int(len(data) * 0.9)])
    return p


def _truncated_before_first_frame(d: Path) -> Path:
    """A fast-start mp4 (index first) cut just after its index: it opens, no frame decodes."""
    data = faststart(face_clip(d / ".scratch" / "b.mp4", 12, seed=8).read_bytes())
    moov = next(b for b in mp4_boxes(data) if b[0] == b"moov")
    (p := d / "cut frames.001.mp4").write_bytes(data[: moov[1] + moov[2] + 16])
    return p


#: maker -> words the error must hold (besides the file's path)
UNREADABLE = {
    _empty: "empty (0 bytes)",
    _text: "could not open",
    _dangling_link: "broken symbolic link",
    _fifo: "not a regular file",
    _device_link: "not a regular file",
    _truncated_index_at_end: "could not open",
    _truncated_before_first_frame: "no frame",
}


@pytest.mark.parametrize("make", list(UNREADABLE), ids=lambda f: f.__name__.strip("_"))
def test_video_to_faces_names_the_unreadable_file_and_why(tmp_path, make):
    path = make(tmp_path)
    with FifoGuard(tmp_path / "fifo.001.mp4") as guard:
        start = time.monotonic()
        with pytest.raises(VideoReadError) as err:
            video_to_faces(path, num_frames=FRAMES, size=SIZE)
    assert str(path) in str(err.value) and UNREADABLE[make] in str(err.value)
    assert not guard.unblocked and time.monotonic() - start < 10  # never blocked on the FIFO
    record(make.__name__.strip("_").replace("_", " "), "video_to_faces", f"VideoReadError naming the file: '{UNREADABLE[make]}'")


# --------------------------------------------------------------------------- the hostile dataset folder


def _two_faces(path: Path) -> list[tuple]:
    """A 512x288 clip with a 110 px face and a 56 px face, both drifting; returns (big, small) boxes per frame."""
    background = gradient_background(288, 512, np.random.default_rng(3))
    truth, frames = [], []
    for i in range(12):
        frame, small = place_face(background, (380 - 10 * np.sin(i / 2), 100 + 6 * np.cos(i / 3)), 56)
        frame, big = place_face(frame, (120 + 10 * np.sin(i / 2), 160), 110)
        frames.append(frame)
        truth.append((big, small))
    write_video(path, frames, 12)
    return truth


def build_hostile_source(src: Path) -> dict:
    """A First Impressions-like folder full of bad inputs; returns what each should become."""
    train = src / "train-1" / "training80_01"
    odd = src / "validation80_01" / "clips dir"
    test = src / "test80_01"
    for d in (train, odd, test):
        d.mkdir(parents=True)
    expect: dict[str, dict] = {}

    # good, no face, two faces
    face_clip(train / "good.001.mp4", seed=1)
    face_clip(train / "good.002.mp4", seed=2)
    face_clip(train / "blank.001.mp4", seed=3, face=False)
    two_truth = _two_faces(train / "two faces.001.mp4")
    expect.update({n: {"status": "prepared"} for n in ("good.001.mp4", "good.002.mp4", "two faces.001.mp4")})
    expect["blank.001.mp4"] = {"status": "no_face"}

    # unreadable
    for make, words in UNREADABLE.items():
        expect[make(train).name] = {"status": "unreadable", "error": words}

    # truncated but partly decodable: a fast-start mp4 and an MJPG AVI (named .mp4), cut in half
    data = faststart(face_clip(src / ".scratch" / "x.mp4", 24, seed=4).read_bytes())
    (train / "cut half.001.mp4").write_bytes(data[: len(data) // 2])
    data = face_clip(src / ".scratch" / "x.avi", 24, seed=5, fourcc="MJPG").read_bytes()
    (train / "cut avi.001.mp4").write_bytes(data[: len(data) // 2])
    for name in ("cut half.001.mp4", "cut avi.001.mp4"):
        expect[name] = {"status": "prepared", "warning": "decode", "partial": True}

    # odd but valid inputs, in a folder with a space, one with a non-ASCII name
    face_clip(odd / "Zoë Ünïcode.001.mp4", seed=6)
    face_clip(odd / "gray.001.mp4", seed=7, gray=True)
    face_clip(odd / "odd 321x243.001.mp4", seed=8, size=(243, 321))
    expect.update({n: {"status": "prepared"} for n in ("Zoë Ünïcode.001.mp4", "gray.001.mp4", "odd 321x243.001.mp4")})
    # broken headers, patched into the bytes
    mp4 = face_clip(src / ".scratch" / "x.mp4", 24, seed=9).read_bytes()
    (odd / "fps zero.001.mp4").write_bytes(patch_mp4_timescale_zero(mp4))
    avi = face_clip(src / ".scratch" / "x.avi", 24, seed=10, fourcc="MJPG").read_bytes()
    (odd / "avi fps zero.001.mp4").write_bytes(patch_avi(avi, usec_per_frame=0, rate=0, scale=0))
    (odd / "count high.001.mp4").write_bytes(patch_avi(avi, total_frames=300, length=300))
    (odd / "count low.001.mp4").write_bytes(patch_avi(avi, total_frames=3, length=3))
    (odd / "count zero.001.mp4").write_bytes(patch_avi(avi, total_frames=0, length=0))
    expect["fps zero.001.mp4"] = {"status": "prepared", "warning": "no usable frame rate", "fps": DEFAULT_FPS}
    expect["avi fps zero.001.mp4"] = {"status": "prepared"}
    expect["count high.001.mp4"] = {"status": "prepared", "warning": "only 24 of the 300 frames"}
    expect["count low.001.mp4"] = {"status": "prepared", "warning": "header says 3 frames but 24 decode"}
    expect["count zero.001.mp4"] = {"status": "prepared"}

    # a test split, so the cache can be trained on
    face_clip(test / "t.001.mp4", seed=11)
    face_clip(test / "t.002.mp4", seed=12)
    expect.update({n: {"status": "prepared"} for n in ("t.001.mp4", "t.002.mp4")})

    # labels: some clips have none, some labels have no clip
    train_labels = {"good.001.mp4": 0.2, "good.002.mp4": 0.4, "two faces.001.mp4": 0.6, "cut half.001.mp4": 0.8,
                    "blank.001.mp4": 0.5, "empty.001.mp4": 0.5, "gone.001.mp4": 0.1, "gone.002.mp4": 0.3}
    val_labels = {"Zoë Ünïcode.001.mp4": 0.3, "gray.001.mp4": 0.7, "lost.003.mp4": 0.9}
    test_labels = {"t.001.mp4": 0.25, "t.002.mp4": 0.75}
    (src / "annotation_training.pkl").write_bytes(annotation_bytes(train_labels))
    (src / "annotation_validation.pkl").write_bytes(annotation_bytes(val_labels))
    (src / "annotation_test.pkl").write_bytes(annotation_bytes(test_labels))
    labelled = {**train_labels, **val_labels, **test_labels}
    for scratch in list(src.rglob(".scratch")):
        shutil.rmtree(scratch)
    return {"expect": expect, "two_truth": two_truth,
            "labels_without_clip": sorted(set(labelled) - set(expect)),
            "clips_without_label": sorted(set(expect) - set(labelled))}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The hostile folder, prepared once through the CLI with a pool of 2 workers."""
    root = tmp_path_factory.mktemp("hostile")
    src, out = root / "src", root / "cache"
    info = build_hostile_source(src)
    with FifoGuard(src / "train-1/training80_01/fifo.001.mp4") as guard:
        proc = cli("prepare", str(src), "--out", str(out), "--num-frames", str(FRAMES), "--size", str(SIZE), "--workers", "2",
                   "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not guard.unblocked, "a worker blocked opening the FIFO"
    return {**info, "src": src, "out": out, "summary": json.loads(proc.stdout), "manifest": read_manifest(out)}


def test_prepare_gives_every_input_its_status_and_goes_on(hostile):
    clips, expect = hostile["manifest"]["clips"], hostile["expect"]
    assert hostile["manifest"]["complete"] is True
    assert set(clips) == set(expect)  # every input has an entry, nothing more
    lost = 0
    for name, want in expect.items():
        entry = clips[name]
        assert entry["status"] == want["status"], (name, entry)
        if want["status"] == "unreadable":
            assert entry["file"] is None and name in entry["error"] and want["error"] in entry["error"], (name, entry)
            assert not clip_cache_path(hostile["out"], name).exists()
            record(name, "prepare (CLI, 2 workers)", f"status unreadable, error names the file: '{want['error']}'")
            continue
        try:
            arrays = load_clip_cache(hostile["out"] / entry["file"])
        except CacheFileError:
            lost += 1
            raise
        assert entry["n_frames"] == len(arrays["faces"]) > 0 and arrays["faces"].shape[1:] == (SIZE, SIZE)
        if "warning" in want:
            assert entry["warning"] and want["warning"] in entry["warning"] and name in entry["warning"], (name, entry)
        else:
            assert entry["warning"] is None, (name, entry)
        outcome = f"status {entry['status']}" + (f", warning: '{want['warning']}'" if "warning" in want else "")
        record(name, "prepare (CLI, 2 workers)", outcome)
    assert lost == 0


def test_summary_counts_match_the_inputs_exactly(hostile):
    summary, expect = hostile["summary"], hostile["expect"]
    want = {s: sum(e["status"] == s for e in expect.values()) for s in ("prepared", "no_face", "unreadable")}
    assert {k: summary[k] for k in ("clips", "done", *want)} == {"clips": len(expect), "done": len(expect), **want}
    assert summary == hostile["manifest"]["summary"]
    assert sum(row["clips"] for row in summary["splits"].values()) == len(expect)
    # annotation names with no clip, clips with no label: counted and listed
    manifest = hostile["manifest"]
    assert manifest["labels_without_clip"] == hostile["labels_without_clip"] == ["gone.001.mp4", "gone.002.mp4",
                                                                               "lost.003.mp4"]
    assert manifest["clips_without_label"] == hostile["clips_without_label"]
    assert summary["labels_without_clip"] == 3 and summary["clips_without_label"] == len(hostile["clips_without_label"])
    assert summary["splits"]["validation"]["labels_without_clip"] == 1
    assert manifest["clips"]["Zoë Ünïcode.001.mp4"]["labels"]["openness"] == 0.3  # non-ASCII name matched
    record("3 labels without clip, %d clips without label" % len(hostile["clips_without_label"]), "prepare (CLI)",
           "counted in summary and listed in manifest")


def test_truncated_clips_use_what_decodes(hostile):
    for name in ("cut half.001.mp4", "cut avi.001.mp4"):
        entry = hostile["manifest"]["clips"][name]
        decoded = decoded_count(Path(entry["video"]))
        assert 0 < decoded < 24
        arrays = load_clip_cache(hostile["out"] / entry["file"])
        assert arrays["frame_indices"].tolist() == uniform_frame_indices(decoded, FRAMES).tolist()
        assert arrays["found"].any()
        kind = "mp4 (index first)" if "half" in name else "MJPG AVI"
        record(f"truncated {kind}, half its bytes", "prepare",
               f"status prepared, warning naming the file; sampled over the {decoded} of 24 frames that decode")


def test_truncated_clip_warns_naming_it_through_video_to_faces(tmp_path):
    data = faststart(face_clip(tmp_path / "full.mp4", 24, seed=4).read_bytes())
    path = tmp_path / "cut half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=re.escape(str(path))):
        seq = video_to_faces(path, num_frames=FRAMES, size=SIZE)
    decoded = decoded_count(path)
    assert seq.frame_indices.tolist() == uniform_frame_indices(decoded, FRAMES).tolist() and decoded < 24
    record("truncated mp4 (index first), half its bytes", "video_to_faces", f"warning naming the file; {decoded} of 24 frames used")


def test_broken_headers_are_estimates(hostile):
    """What OpenCV reports for each patched header, and that the frames used really decoded, over the whole clip."""
    clips = hostile["manifest"]["clips"]
    reported = {}
    for name in ("fps zero.001.mp4", "avi fps zero.001.mp4", "count high.001.mp4", "count low.001.mp4",
                 "count zero.001.mp4", "odd 321x243.001.mp4", "gray.001.mp4", "Zoë Ünïcode.001.mp4"):
        entry = clips[name]
        video = Path(entry["video"])
        reported[name] = fps, count = opencv_header(video)
        decoded = decoded_count(video)
        arrays = load_clip_cache(hostile["out"] / entry["file"])
        # indices: real decoded frames, uniform over all of them
        assert arrays["frame_indices"].tolist() == uniform_frame_indices(decoded, FRAMES).tolist(), (name, count, decoded)
        assert MIN_FPS <= entry["fps"] <= MAX_FPS and entry["fps"] == float(arrays["fps"])
        assert arrays["found"].all(), name
    # the patches took: what OpenCV says
    assert reported["fps zero.001.mp4"][0] < MIN_FPS  # FFmpeg: time scale 0 -> 1, so ~1/1024 fps
    assert clips["fps zero.001.mp4"]["fps"] == DEFAULT_FPS
    assert reported["count high.001.mp4"][1] == 300 and reported["count low.001.mp4"][1] == 3
    assert reported["count zero.001.mp4"][1] <= 0
    # AVI with rate, scale and usec/frame all 0: FFmpeg substitutes its own guess, which helpers cannot tell apart
    avi_fps = reported["avi fps zero.001.mp4"][0]
    assert clips["avi fps zero.001.mp4"]["fps"] == pytest.approx(avi_fps)
    record("mp4 'mdhd' time scale patched to 0", "prepare", f"OpenCV reports {reported['fps zero.001.mp4'][0]:.4g} fps; "
           f"helpers: {DEFAULT_FPS:g} fps with a warning")
    record("AVI usec/frame, rate, scale patched to 0", "prepare",
           f"OpenCV reports {avi_fps:g} fps (FFmpeg's guess); used as is, no warning possible")
    record("AVI frame count patched to 300 (24 real)", "prepare", "warning; sampled over the 24 that decode")
    record("AVI frame count patched to 3 (24 real)", "prepare", "warning; counted, sampled over all 24")
    record("AVI frame count patched to 0", "prepare", "counted by decoding, no warning")
    cap = cv2.VideoCapture(clips["odd 321x243.001.mp4"]["video"])
    decoded_size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    cap.release()
    record("odd-sized 321x243 frames", "prepare", f"status prepared (OpenCV wrote and decodes them as {decoded_size})")
    record("grayscale-written video (isColor False)", "prepare", "status prepared")
    record("path with spaces and non-ASCII name ('clips dir/Zoë Ünïcode.001.mp4')", "prepare", "status prepared, label matched")


def test_two_faces_the_largest_is_used_in_every_frame(hostile):
    entry = hostile["manifest"]["clips"]["two faces.001.mp4"]
    arrays = load_clip_cache(hostile["out"] / entry["file"])
    assert arrays["found"].all() and len(arrays["found"]) == FRAMES
    for box, index in zip(arrays["boxes"], arrays["frame_indices"]):
        big, small = hostile["two_truth"][index]
        assert box_iou(box, big) >= 0.5 and box_iou(box, small) == 0, (index, box)
    record("two faces (110 px and 56 px) in every frame, both moving", "prepare", "every box is the large face")


def test_no_face_is_a_status_not_an_error(hostile):
    entry = hostile["manifest"]["clips"]["blank.001.mp4"]
    arrays = load_clip_cache(hostile["out"] / entry["file"])
    assert entry["error"] is None and not arrays["found"].any() and entry["n_found"] == 0
    record("clip with no face in any frame", "prepare", "status no_face, cache file written, found all False")


def test_directory_named_like_a_clip_is_recorded_unreadable(tmp_path):
    src = tmp_path / "src"
    face_clip(src / "good.001.mp4", seed=1)
    (src / "folder.001.mp4").mkdir()
    with pytest.raises(VideoReadError, match=re.escape(str(src / "folder.001.mp4"))):
        video_to_faces(src / "folder.001.mp4")
    record("directory named like a clip ('x.001.mp4/')", "video_to_faces", "VideoReadError naming it: 'is a directory'")
    summary = prepare(src, tmp_path / "cache", num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    clips = read_manifest(tmp_path / "cache")["clips"]
    assert clips["good.001.mp4"]["status"] == "prepared"
    assert summary["clips"] == 2, "the directory is silently left out of the run"
    assert clips["folder.001.mp4"]["status"] == "unreadable" and "directory" in clips["folder.001.mp4"]["error"]
    record("directory named like a clip ('x.001.mp4/')", "prepare", "status unreadable")



# --------------------------------------------------------------------------- no read permission


def _drop_file_read_override():
    """preexec_fn: drop CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) from the bounding set,
    so the exec'd process, though root, obeys file permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(97)


def test_file_without_read_permission(tmp_path):
    src = tmp_path / "src"
    face_clip(src / "good.001.mp4", seed=1)
    locked = face_clip(src / "locked.001.mp4", seed=2)
    locked.chmod(0)
    out = tmp_path / "cache"
    args = ("prepare", str(src), "--out", str(out), "--num-frames", str(FRAMES), "--size", str(SIZE), "--workers", "1")
    try:
        if os.geteuid() != 0:
            with pytest.raises(VideoReadError, match=re.escape(str(locked))):
                video_to_faces(locked)
            proc = cli(*args)
        else:
            # Root reads any file whatever its mode bits, so run the CLI as root without the
            # capabilities that override file permissions: the mode bits then apply.
            probe = subprocess.run([sys.executable, "-c", f"open({str(locked)!r}, 'rb')"],
                                   preexec_fn=_drop_file_read_override, capture_output=True)
            if probe.returncode == 97 or probe.returncode == 0:
                pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE here, so a chmod 000 "
                            "file stays readable: the permission case cannot be made")
            proc = cli(*args, preexec_fn=_drop_file_read_override)
    finally:
        locked.chmod(0o644)
    assert proc.returncode == 0, proc.stderr[-2000:]
    clips = read_manifest(out)["clips"]
    assert clips["good.001.mp4"]["status"] == "prepared"
    entry = clips["locked.001.mp4"]
    assert entry["status"] == "unreadable" and str(locked) in entry["error"], entry
    assert "permission denied" in entry["error"].lower(), entry
    record("file without read permission (mode 000)", "prepare (CLI)", "status unreadable, error names the file: 'Permission denied'")


# --------------------------------------------------------------------------- annotation pickles


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_pickle(sentinel: Path, nested: bool) -> bytes:
    payload = _Reduce(os.system, f"touch {sentinel}")
    if not nested:
        return pickle.dumps(payload, protocol=2)
    table = {t: {"good.001.mp4": 0.5} for t in TRAITS}
    table["interview"] = {"good.001.mp4": payload}
    return pickle.dumps(table, protocol=2)


def test_code_running_pickle_via_cli_labels_runs_nothing(tmp_path):
    src = tmp_path / "src"
    face_clip(src / "good.001.mp4", seed=1)
    sentinel = tmp_path / "SENTINEL"
    evil = tmp_path / "my labels.pkl"
    evil.write_bytes(_evil_pickle(sentinel, nested=False))
    proc = cli("prepare", str(src), "--out", str(tmp_path / "cache"), "--workers", "1", "--labels", str(evil))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr  # a clear one-line error, not a stack dump
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: AnnotationFileError") and str(evil) in last and "refused" in last, last
    assert not sentinel.exists()
    assert not (tmp_path / "cache" / "manifest.json").exists()
    record("annotation pickle that runs os.system on load", "prepare --labels (CLI)",
           "run refused: AnnotationFileError naming the file; nothing executed")


def test_code_running_pickle_found_in_source_runs_nothing(tmp_path):
    src = tmp_path / "src"
    face_clip(src / "good.001.mp4", seed=1)
    sentinel = tmp_path / "SENTINEL"
    evil = src / "annotation_training.pkl"
    evil.write_bytes(_evil_pickle(sentinel, nested=True))
    with pytest.raises(AnnotationFileError, match=re.escape(str(evil))) as err:
        prepare(src, tmp_path / "cache", num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert "refused" in str(err.value) and "posix.system" in str(err.value)
    assert not sentinel.exists()
    with pytest.raises(AnnotationFileError):
        load_annotations(evil)
    assert not sentinel.exists()
    record("annotation pickle found in the dataset, os.system inside a valid table", "prepare",
           "run refused: AnnotationFileError naming the file; nothing executed")


WRONG_SHAPES = {
    "a list": ([0.1, 0.2], "expected a dict"),
    "a dict of strings": ({t: "high" for t in TRAITS}, "holds a str"),
    "scores outside [0, 1]": ({t: {"good.001.mp4": 1.5} for t in TRAITS}, "score in [0, 1]"),
}


@pytest.mark.parametrize("shape", list(WRONG_SHAPES))
def test_wrong_shape_pickle_via_prepare_names_the_file(tmp_path, shape):
    src = tmp_path / "src"
    src.mkdir()
    obj, why = WRONG_SHAPES[shape]
    bad = tmp_path / "labels.pkl"
    bad.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(AnnotationFileError) as err:
        prepare(src, tmp_path / "cache", workers=1, progress=False, labels=[bad])
    assert str(bad) in str(err.value) and why in str(err.value)
    record(f"annotation pickle holding {shape}", "prepare --labels", "AnnotationFileError naming the file")


# --------------------------------------------------------------------------- unsafe archives


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_archive_entries_outside_the_target_are_refused(tmp_path, kind):
    src = tmp_path / "data" / "src"
    out = tmp_path / "data" / "cache"
    face_clip(src / "loose.001.mp4", seed=1)
    outside = tmp_path / "outside_target"
    entry = "../../../../evil.txt" if kind == "relative" else str(outside / "evil.txt")
    archive = src / "train-1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("training80_01/good.001.mp4", face_clip(tmp_path / "c.mp4", seed=2).read_bytes())
        zf.writestr(entry, b"pwned")
    with pytest.raises(UnsafeArchiveError) as err:
        prepare(src, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert str(archive) in str(err.value) and repr(entry) in str(err.value)
    assert not [p for p in tmp_path.rglob("*evil*")], "something was written"
    assert not (outside / "evil.txt").exists() and not Path("/evil.txt").exists()
    record(f"zip entry with {'a ../../ path' if kind == 'relative' else 'an absolute path'}", "prepare",
           "run refused: UnsafeArchiveError naming the archive and entry; nothing written")


# --------------------------------------------------------------------------- killed and resumed


def test_sigkilled_cli_prepare_resumes_without_redoing_or_losing_clips(tmp_path):
    src, out = tmp_path / "src", tmp_path / "cache"
    names = [f"clip{i:02d}.001.mp4" for i in range(12)]
    for i, name in enumerate(names):
        face_clip(src / name, n=40, seed=i, size=(120, 160))
    clips_dir = out / "clips"
    args = ("prepare", str(src), "--out", str(out), "--workers", "1")  # default frames 32, size 48
    proc = subprocess.Popen([sys.executable, "-m", "helpers", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if clips_dir.is_dir() and len(list(clips_dir.glob("*.npz"))) >= 3:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        rc = proc.wait(30)
    assert rc == -signal.SIGKILL, f"prepare ended before it could be killed (rc {rc})"
    finished = {p.name: p.stat().st_mtime_ns for p in clips_dir.glob("*.npz")}
    assert 3 <= len(finished) < len(names)
    assert read_manifest(out)["complete"] is False

    proc2 = cli(*args, "--json")
    assert proc2.returncode == 0, proc2.stderr[-2000:]
    summary = json.loads(proc2.stdout)
    manifest = read_manifest(out)
    assert manifest["complete"] is True and set(manifest["clips"]) == set(names)
    assert summary["clips"] == summary["done"] == summary["prepared"] == 12
    assert summary["reused"] == len(finished) and summary["redone"] == 0
    assert {p: (clips_dir / p).stat().st_mtime_ns for p in finished} == finished  # finished clips untouched
    for name in names:
        arrays = load_clip_cache(clip_cache_path(out, name))
        assert len(arrays["faces"]) == 32 and arrays["found"].all()
    stale = sorted(p.name for p in clips_dir.iterdir() if p.suffix != ".npz")
    record(f"prepare (CLI) SIGKILLed after {len(finished)} of 12 clips, then re-run", "prepare (CLI)",
           f"resumed: {len(finished)} reused untouched, {12 - len(finished)} done, all 12 load"
           + (f"; stale temp files left: {stale}" if stale else ""))


# --------------------------------------------------------------------------- corrupted cache files


def test_corrupted_cache_files_are_skipped_by_train_and_redone_by_prepare(hostile, tmp_path, caplog):
    from helpers.training import train

    out = tmp_path / "cache"
    shutil.copytree(hostile["out"], out)
    manifest = read_manifest(out)
    flipped, emptied = clip_cache_path(out, "good.002.mp4"), clip_cache_path(out, "cut half.001.mp4")
    data = bytearray(flipped.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = b"\xff" * 64  # overwrite bytes inside the faces array
    flipped.write_bytes(bytes(data))
    emptied.write_bytes(b"")
    for bad in (flipped, emptied):
        with pytest.raises(CacheFileError, match=re.escape(str(bad))):
            load_clip_cache(bad)
    usable = [n for n, e in manifest["clips"].items() if e["split"] == "train" and e["status"] == "prepared"
              and e["labels"]]
    assert len(usable) == 4

    caplog.set_level("WARNING", logger="helpers.inputs")
    metrics = train(out, tmp_path / "run", length=FRAMES, epochs=1, batch_size=2, seed=0, split_scheme="official",
                    model_kwargs={"widths": (4, 8), "features": 8, "units": 8})
    skipped = json.loads((tmp_path / "run" / "metrics.json").read_text())["skipped_files"]
    assert set(skipped) == {"good.002.mp4", "cut half.001.mp4"}
    assert str(flipped) in skipped["good.002.mp4"] and str(emptied) in skipped["cut half.001.mp4"]
    assert metrics["n_clips"]["train"] == len(usable) - 2  # never fed to training
    messages = [r.getMessage() for r in caplog.records if r.name == "helpers.inputs"]
    for name, path in (("good.002.mp4", flipped), ("cut half.001.mp4", emptied)):
        assert any(name in m and str(path) in m for m in messages), messages
    assert np.isfinite(metrics["mean_mae"])
    # what the training pipeline yields: only the two good clips' targets (labels 0.2 and 0.6), never 0.4 or 0.8
    from helpers.inputs import make_dataset

    ds, source = make_dataset(out, "train", length=FRAMES, batch_size=1)
    fed = sorted(round(float(y[0][0]), 3) for _, y in ds.as_numpy_iterator())
    assert fed == [0.2, 0.6] and set(source.skipped) == {"good.002.mp4", "cut half.001.mp4"}
    record("cache file with 64 bytes overwritten / emptied", "train",
           "skipped with a warning naming it; listed in metrics.json skipped_files")

    summary = prepare(hostile["src"], out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert summary["redone"] == 2 and summary["reused"] == len(
        [e for e in manifest["clips"].values() if e["status"] != "unreadable"]) - 2
    for bad in (flipped, emptied):
        assert len(load_clip_cache(bad)["faces"]) == FRAMES
    assert read_manifest(out)["clips"]["good.002.mp4"]["status"] == "prepared"
    record("cache file with 64 bytes overwritten / emptied", "prepare re-run", "detected and redone (summary.redone)")


# --------------------------------------------------------------------------- ingest, round two (issue 19)
# Names that are not valid UTF-8, other containers, hostile pickle structures, zip bombs and
# damaged or duplicated zip entries, set-repository text, the umask of what prepare writes.

STRICT_UTF8 = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # as under en_US.UTF-8, not C.UTF-8


def _not_utf8_clip(folder: Path, seed: int, name: bytes = b"caf\xe9.001.mp4") -> Path:
    """A clip in ``folder`` whose file name is not valid UTF-8 (Python holds it with a lone surrogate).

    Written under a plain name, then renamed: OpenCV's writer crashes on such a name too.
    """
    target = Path(os.fsdecode(os.fsencode(folder) + b"/" + name))
    os.replace(face_clip(folder / "plain-name.mp4", seed=seed), target)
    return target


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder trained for one epoch on a tiny cache (for predict)."""
    from helpers import training
    from tests.test_training import TINY, make_cache

    root = tmp_path_factory.mktemp("ingest-run")
    training.train(make_cache(root), root / "run", epochs=1, batch_size=4, seed=0, model_kwargs=TINY)
    return root / "run"


@pytest.mark.parametrize("workers", [1, 2])
def test_clip_name_not_utf8_is_prepared(tmp_path, workers):
    src, out = tmp_path / "src", tmp_path / "cache"
    face_clip(src / "good.001.mp4", seed=1)
    odd = _not_utf8_clip(src, seed=2)
    proc = cli("prepare", str(src), "--out", str(out), "--workers", str(workers), "--num-frames", str(FRAMES),
               "--size", str(SIZE), env=STRICT_UTF8)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])  # was -11 (SIGSEGV in OpenCV)
    entry = read_manifest(out)["clips"][odd.name]
    assert entry["status"] == "prepared" and entry["error"] is None, entry
    assert len(load_clip_cache(clip_cache_path(out, odd.name))["faces"]) == FRAMES
    record(f"clip named b'caf\\xe9.001.mp4' (not valid UTF-8), {workers} worker(s)", "prepare (CLI)",
           "read through an ASCII-named link: prepared")


def test_clip_name_not_utf8_is_scored_by_predict(tmp_path, tiny_run):
    folder = tmp_path / "mine"
    face_clip(folder / "good.001.mp4", seed=1)
    _not_utf8_clip(folder, seed=2)
    for fmt in ((), ("--csv",), ("--json",)):
        proc = cli("predict", str(folder), "--model", str(tiny_run), *fmt, env=STRICT_UTF8)
        assert proc.returncode == 0, (fmt, proc.returncode, proc.stderr[-2000:])  # was 139, no output
        if fmt == ("--json",):
            [row] = [r for r in json.loads(proc.stdout) if "caf" in r["clip"]]
            assert row["clip"] == os.fsdecode(os.fsencode(folder) + b"/caf\xe9.001.mp4") and row["status"] == "scored"
        else:
            row = next(line for line in proc.stdout.splitlines() if "caf" in line)
            assert "caf\\udce9.001.mp4" in row and (fmt == () or "scored" in row), (fmt, row)
            assert fmt != () or "8/8" in row, row
    record("clip named b'caf\\xe9.001.mp4' (not valid UTF-8)", "predict (CLI, strict UTF-8 stdout)",
           "scored; the name printed escaped (caf\\udce9)")


def _bomb_pickle() -> bytes:
    bomb: list = [0.5]
    for _ in range(40):
        bomb = [bomb] * 10  # its repr would hold 10**40 items
    return pickle.dumps({t: {"good.001.mp4": bomb} for t in TRAITS}, protocol=2)


def _deep_pickle(depth: int = 100_000) -> bytes:
    value = b"]" * depth + b"K\x01" + b"a" * depth
    body = b"".join(b"X" + len(t).to_bytes(4, "little") + t.encode() + b"}X\x0c\x00\x00\x00good.001.mp4" + value + b"s"
                    for t in TRAITS)
    return b"\x80\x02}(" + body + b"u."


def _deep_key_pickle(depth: int = 1_000_000) -> bytes:
    return b"\x80\x02}N" + b"\x85" * depth + b"K\x01s."


HOSTILE_STRUCTURES = {
    "1 KB pickle of shared references (billion laughs)": _bomb_pickle,
    "pickle nested 100k lists deep": _deep_pickle,
    "pickle with a dict key nested 1M tuples deep": _deep_key_pickle,
}


@pytest.mark.parametrize("kind", list(HOSTILE_STRUCTURES))
def test_hostile_pickle_structures_end_in_one_line_naming_the_file(tmp_path, kind):
    src = tmp_path / "src"
    face_clip(src / "good.001.mp4", seed=1)
    bad = tmp_path / "annotation_training.pkl"
    bad.write_bytes(HOSTILE_STRUCTURES[kind]())
    for args in (("labels", str(bad)),
                 ("prepare", str(src), "--out", str(tmp_path / "cache"), "--workers", "1", "--labels", str(bad))):
        start = time.monotonic()
        proc = cli(*args, timeout=120)
        seconds = time.monotonic() - start
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args[0], proc.returncode, proc.stderr[-2000:])
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: AnnotationFileError") and str(bad) in last and len(last) < 1000, last
        assert seconds < 60, seconds  # start-up included; the refusal itself is well under a second
    assert not (tmp_path / "cache" / "manifest.json").exists()
    record(kind, "labels and prepare --labels (CLI)", "AnnotationFileError naming the file, bounded time and memory")


def _zeros_entry(zf: zipfile.ZipFile, name: str, size: int) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w") as out:
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            out.write(chunk)


def test_zip_bomb_entry_is_skipped_and_the_rest_prepared(tmp_path):
    src, out = tmp_path / "src", tmp_path / "cache"
    src.mkdir()
    archive = src / "train-1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("training80_01/good.001.mp4", face_clip(tmp_path / "c.mp4", seed=1).read_bytes())
        _zeros_entry(zf, "training80_01/zeros.001.mp4", 1 << 30)
    assert archive.stat().st_size < 1.2e6  # 1 GiB of zeros in a 1.1 MB zip
    summary = prepare(src, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    manifest = read_manifest(out)
    assert summary["done"] == 1 and manifest["clips"]["good.001.mp4"]["status"] == "prepared"
    [skip] = manifest["archives"]["skipped"]
    assert skip["archive"] == str(archive) and skip["entry"] == "training80_01/zeros.001.mp4"
    assert "times its compressed size" in skip["reason"]
    assert not [p for p in tmp_path.rglob("*zeros*")]  # nothing kept of it, not even a part file
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < 10 << 20
    record("zip entry of 1 GiB of zeros in a 1.1 MB zip", "prepare",
           "entry skipped (archives.skipped names archive, entry, why); nothing kept; the rest prepared")


def test_damaged_and_duplicated_zip_entries_are_counted_and_the_rest_prepared(tmp_path):
    import warnings

    src, out = tmp_path / "src", tmp_path / "cache"
    src.mkdir()
    archive = src / "train-1.zip"
    clip = face_clip(tmp_path / "c.mp4", seed=1).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in [("t/good.001.mp4", clip), ("t/crc.001.mp4", clip + b"CRC"),
                               ("t/twice.001.mp4", clip), ("t/twice.001.mp4", clip + b"other")]:
                zf.writestr(name, data)
    data = bytearray(archive.read_bytes())
    at = data.index(b"t/crc.001.mp4") + len("t/crc.001.mp4") + 100  # inside that stored entry's bytes
    data[at] ^= 0xFF
    archive.write_bytes(bytes(data))
    summary = prepare(src, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    manifest = read_manifest(out)
    assert set(manifest["clips"]) == {"good.001.mp4"} and summary["done"] == 1
    reasons = {d["entry"]: d["reason"] for d in manifest["archives"]["skipped"]}
    assert set(reasons) == {"t/crc.001.mp4", "t/twice.001.mp4"}
    assert "CRC" in reasons["t/crc.001.mp4"] and "different contents" in reasons["t/twice.001.mp4"]
    record("zip entry with a CRC error; a name listed twice with different contents", "prepare",
           "each a skipped entry in archives.skipped; the rest extracted and prepared")


CONTAINERS = {"a.001.mov": "mp4v", "b.001.mkv": "mp4v", "c.001.webm": "VP80", "d.001.avi": "MJPG", "e.001.MP4": "mp4v"}


def test_other_containers_are_listed_prepared_and_scored(tmp_path, tiny_run):
    src, out = tmp_path / "src", tmp_path / "cache"
    for name, fourcc in CONTAINERS.items():
        face_clip(src / name, seed=len(name), fourcc=fourcc)
    summary = prepare(src, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    manifest = read_manifest(out)
    assert summary["clips"] == summary["prepared"] == len(CONTAINERS)
    assert {n: e["status"] for n, e in manifest["clips"].items()} == {n: "prepared" for n in CONTAINERS}
    proc = cli("predict", str(src), "--model", str(tiny_run), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert sorted(Path(r["clip"]).name for r in rows) == sorted(CONTAINERS)
    assert all(r["status"] == "scored" for r in rows), rows
    record(".mov, .mkv, .webm, .avi and .MP4 clips in a folder", "prepare and predict (CLI)",
           "listed, counted and prepared; every one scored")


@pytest.mark.parametrize("repository, branch", [("me/fork\n", "main"), ("me/fork", "main;id"),
                                                ("me/fork", "$(touch x)")])
def test_set_repository_refuses_text_that_would_break_the_files(tmp_path, monkeypatch, capsys, repository, branch):
    from helpers import repository as R
    from helpers.__main__ import main

    copy = tmp_path / "repo"
    (copy / "helpers").mkdir(parents=True)
    shutil.copy2(REPO / "helpers" / "repository.py", copy / "helpers" / "repository.py")
    shutil.copy2(REPO / "README.md", copy / "README.md")
    shutil.copytree(REPO / "notebooks", copy / "notebooks")
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    monkeypatch.setattr(R, "root", lambda: copy)
    assert main(["set-repository", repository, "--branch", branch]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ValueError") and "nothing was changed" in err[0], err
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    record(f"set-repository {repository!r} --branch {branch!r}", "set-repository (CLI)",
           "refused before anything is written, naming the value")


def test_files_prepare_writes_follow_the_umask(tmp_path):
    src, out = tmp_path / "src", tmp_path / "cache"
    face_clip(src / "good.001.mp4", seed=1)
    old = os.umask(0o022)
    try:
        prepare(src, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    finally:
        os.umask(old)
    modes = {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {"0o644"}, modes  # mkstemp alone gave 0o600
    record("prepare under umask 022", "prepare", "cache files and manifest 0644 (shareable), not 0600")

# --------------------------------------------------------------------------- prepare, round two: concurrent runs,
# crafted cache headers, clip names, full disks (issue 19, items 3, 8, 10 and 12, prepare side)


def test_second_cli_prepare_on_one_folder_is_refused_and_the_first_finishes(tmp_path):
    src, out = tmp_path / "src", tmp_path / "cache"
    names = [f"clip{i:02d}.001.mp4" for i in range(6)]
    for i, name in enumerate(names):
        face_clip(src / name, n=20, seed=i)
    args = ("prepare", str(src), "--out", str(out), "--num-frames", str(FRAMES), "--size", str(SIZE),
            "--workers", "1")
    first = subprocess.Popen([sys.executable, "-m", "helpers", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        lock, deadline = out / ".prepare.lock", time.monotonic() + 90
        while time.monotonic() < deadline and first.poll() is None:
            if (out / "manifest.json").is_file() and lock.is_file() and lock.read_text().strip() == str(first.pid):
                break
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)  # holds the folder, mid-run, for as long as the second one takes
        before = (out / "manifest.json").read_bytes()
        second = cli(*args)
        after = (out / "manifest.json").read_bytes()
        first.send_signal(signal.SIGCONT)
        rc = first.wait(120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-2000:]
    assert str(out) in second.stderr and f"another run (process {first.pid})" in second.stderr
    assert after == before  # the refused run wrote nothing
    assert rc == 0
    manifest = read_manifest(out)
    assert manifest["complete"] is True and set(manifest["clips"]) == set(names)
    for name in names:
        assert len(load_clip_cache(clip_cache_path(out, name))["faces"]) == FRAMES
    record("two `prepare` runs on one --out (the first stopped mid-run while the second starts)", "prepare (CLI)",
           "second refused at once, naming the folder and the first's pid; the first finishes, all 6 clips load")


def test_cache_header_claiming_a_huge_shape_is_skipped_by_train_and_redone_by_prepare(hostile, tmp_path, caplog):
    import zipfile as zf

    from helpers.training import train

    out = tmp_path / "cache"
    shutil.copytree(hostile["out"], out)
    crafted = clip_cache_path(out, "good.002.mp4")
    with zf.ZipFile(crafted) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10**9, SIZE, SIZE)})  # 1 TB claimed
    members["faces.npy"] = header.getvalue() + np.load(crafted)["faces"].tobytes()
    with zf.ZipFile(crafted, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(CacheFileError, match=re.escape(str(crafted)) + ".*claims shape"):
        load_clip_cache(crafted)

    caplog.set_level("WARNING", logger="helpers.inputs")
    train(out, tmp_path / "run", length=FRAMES, epochs=1, batch_size=2, seed=0,
          model_kwargs={"widths": (4, 8), "features": 8, "units": 8})
    skipped = json.loads((tmp_path / "run" / "metrics.json").read_text())["skipped_files"]
    assert set(skipped) == {"good.002.mp4"} and str(crafted) in skipped["good.002.mp4"]
    assert any("good.002.mp4" in r.getMessage() for r in caplog.records if r.name == "helpers.inputs")
    record("cache .npz whose faces header claims 10^9 frames (1 TB)", "train",
           "skipped with a warning naming it, nothing allocated; listed in metrics.json skipped_files")

    summary = prepare(hostile["src"], out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert summary["redone"] == 1
    assert len(load_clip_cache(crafted)["faces"]) == FRAMES
    record("cache .npz whose faces header claims 10^9 frames (1 TB)", "prepare re-run",
           "detected from the header and redone (summary.redone)")


def test_clip_names_outside_the_rule_and_shared_cache_files_are_skipped(tmp_path):
    src, out = tmp_path / "src", tmp_path / "cache"
    face_clip(src / "good.001.mp4", seed=1)
    face_clip(src / "holiday video.mp4", seed=2)
    face_clip(src / "more" / "good.001.MP4", seed=3)
    proc = cli("prepare", str(src), "--out", str(out), "--num-frames", str(FRAMES), "--size", str(SIZE),
               "--workers", "1", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary, clips = json.loads(proc.stdout), read_manifest(out)["clips"]
    assert {n: e["status"] for n, e in clips.items()} == {
        "good.001.mp4": "prepared", "holiday video.mp4": "skipped", "good.001.MP4": "skipped"}
    assert str(src / "holiday video.mp4") in clips["holiday video.mp4"]["error"]
    assert "<video id>.<NNN>.<ext>" in clips["holiday video.mp4"]["error"]
    shared = clips["good.001.MP4"]["error"]
    assert str(src / "more" / "good.001.MP4") in shared and str(src / "good.001.mp4") in shared
    assert summary["skipped"] == 2 and summary["prepared"] == 1
    record("clip named outside `<id>.<NNN>.<ext>` (`holiday video.mp4`)", "prepare (CLI)",
           "status `skipped`, the error naming the file and the pattern; counted in the summary")
    record("`x.001.mp4` and `x.001.MP4` (one cache file for two clips)", "prepare (CLI)",
           "one prepared; the other `skipped`, its error naming both files and the cache file")


def test_write_failing_mid_run_is_one_error_line_naming_the_file(tmp_path):
    import resource

    src, out = tmp_path / "src", tmp_path / "cache"
    for i in range(3):
        face_clip(src / f"clip{i}.001.mp4", n=20, seed=i)
    limit = 16_000  # bytes per file: each manifest fits, a clip of 32 x 48 x 48 faces (74 KB) does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail (EFBIG)

    proc = cli("prepare", str(src), "--out", str(out), "--workers", "1", preexec_fn=small_files)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(errors) == 1 and "CacheWriteError" in errors[0] and str(out / "clips") in errors[0], errors
    assert not [p for p in (out / "clips").iterdir() if p.suffix != ".npz"]  # no temporary file left
    manifest = read_manifest(out)
    assert manifest["complete"] is False
    record("a write fails mid-run (file size limit: EFBIG; a full disk is the same path)", "prepare (CLI)",
           "one error line naming the cache file; exit 2; no temporary file left; the manifest stays readable")

# --------------------------------------------------------------------------- frame rates and false alarms (issue 19.11)


def _absent_for_two_seconds(path: Path, header_fps: float) -> Path:
    """6 s of a 30 fps clip: the face, then 2 s (frames 60-119) of background, then the face; header ``header_fps``."""
    background = gradient_background(240, 320, np.random.default_rng(3))
    frames = (background if 60 <= i < 120 else place_face(background, (160 + 10 * np.sin(i / 9), 120), 90)[0]
              for i in range(180))
    write_video(path, frames, header_fps)
    return path


def test_a_header_claiming_1000_fps_is_replaced_and_a_2s_absence_is_not_bridged(tmp_path):
    src = tmp_path / "src"
    clip = _absent_for_two_seconds(src / "fast header.001.mp4", 1000.0)
    assert opencv_header(clip)[0] == pytest.approx(1000.0)  # the header really claims it
    (src / "annotation_training.pkl").write_bytes(annotation_bytes({"fast header.001.mp4": 0.5}))
    out = tmp_path / "cache"
    prepare(src, out, num_frames=32, size=SIZE, workers=1, progress=False)
    entry = read_manifest(out)["clips"]["fast header.001.mp4"]
    assert entry["fps"] == DEFAULT_FPS and MAX_FPS < 1000
    assert str(clip) in entry["warning"] and "no usable frame rate" in entry["warning"]
    arrays = load_clip_cache(out / entry["file"])
    absent = (arrays["frame_indices"] >= 60) & (arrays["frame_indices"] < 120)
    assert absent.sum() >= 8 and not arrays["usable"][absent].any() and arrays["usable"][~absent].all()
    record("mp4 header claiming 1000 fps on a 30 fps clip, face absent 2 s", "prepare",
           f"warning kept in the manifest; {DEFAULT_FPS:g} fps assumed; the {int(absent.sum())} sampled frames "
           "of the absence not usable")


def test_faceless_street_like_clips_give_no_usable_frame(tmp_path):
    from benchmarks.bench_faces import FACELESS, faceless_frames

    src = tmp_path / "src"
    labels = {}
    for k, kind in enumerate(FACELESS):
        for seed in range(2):
            name = f"{kind}{seed}.00{k}.mp4"
            frames = [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in faceless_frames(kind, seed, 48, (240, 320))]
            write_video(src / name, frames, 15)
            labels[name] = 0.5
    (src / "annotation_training.pkl").write_bytes(annotation_bytes(labels))
    out = tmp_path / "cache"
    summary = prepare(src, out, num_frames=32, size=SIZE, workers=1, progress=False)
    clips = read_manifest(out)["clips"]
    sampled = sum(e["n_frames"] for e in clips.values())
    usable = sum(e["n_usable"] for e in clips.values())
    assert len(clips) == len(labels) and sampled == 32 * len(labels)
    assert usable <= 0.01 * sampled, {n: e["n_usable"] for n, e in clips.items()}
    assert summary["done"] == len(labels)
    record(f"{len(labels)} faceless clips (street-like, textures, noise, blobs; panning)", "prepare",
           f"{usable} of {sampled} sampled frames usable (false alarms refused by a second cascade)")

# --------------------------------------------------------------------------- run folders and train's checks (issue 19)


def _tiny_cache(root: Path, **manifest_keys) -> Path:
    from tests.test_training import make_cache

    return make_cache(root, **manifest_keys)


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    from helpers.__main__ import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


TINY_TRAIN = ("--length", "8", "--epochs", "1", "--batch-size", "4")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny cache and a finished run on it (CLI train, the default split scheme)."""
    from helpers.__main__ import main

    root = tmp_path_factory.mktemp("runs")
    cache = _tiny_cache(root)
    run = root / "run"
    assert main(["train", str(cache), "--out", str(run), *TINY_TRAIN, "--json"]) == 0
    return cache, run


def test_interrupted_retraining_keeps_the_finished_run(trained, tmp_path, monkeypatch):
    import keras

    from helpers import runs
    from helpers.training import load_run, train

    cache, finished = trained
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def stub_then_interrupt(self, path, *a, **k):
        Path(path).write_bytes(b"PK\x03\x04 stub")
        raise KeyboardInterrupt

    def fail_on_metrics(path, obj, real=runs.write_json_atomic):
        if Path(path).name == runs.METRICS_FILE:
            raise KeyboardInterrupt
        real(path, obj)

    for where, target, name, fake in (("during model.save", keras.Model, "save", stub_then_interrupt),
                                      ("after model.save", runs, "write_json_atomic", fail_on_metrics)):
        with monkeypatch.context() as m:
            m.setattr(target, name, fake)
            with pytest.raises(KeyboardInterrupt):
                train(cache, out, length=8, epochs=1, batch_size=4, seed=7,
                      model_kwargs={"widths": (4, 8), "features": 8, "units": 8})
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert load_run(out).metrics["seed"] == 0  # the old run, whole, with its own metrics
        left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.")]
        assert left == []
        record(f"re-train interrupted {where}", "train", "old run intact and loadable, no temp folder left",
               lost=0)


def test_disk_full_during_train_names_the_path(trained, tmp_path, monkeypatch, capsys):
    import errno

    import keras

    cache, _ = trained

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", full)
    out = tmp_path / "run"
    code, _, err = _main(capsys, "train", str(cache), "--out", str(out), *TINY_TRAIN)
    assert code == 2 and _one_line(err) and str(out) in err and "No space left on device" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    record("disk full (ENOSPC) while train writes the run", "train", "exit 2, one line naming the run folder")


def test_incomplete_cache_is_refused_with_counts(tmp_path, capsys):
    cache = _tiny_cache(tmp_path, complete=False, summary={"done": 17, "clips": 60})
    code, _, err = _main(capsys, "train", str(cache), "--out", str(tmp_path / "run"), *TINY_TRAIN)
    assert code == 2 and _one_line(err) and str(cache) in err and "17 of 60 clips" in err
    assert "--allow-incomplete" in err and not (tmp_path / "run").exists()
    code, _, _ = _main(capsys, "train", str(cache), "--out", str(tmp_path / "run"), *TINY_TRAIN, "--allow-incomplete")
    assert code == 0 and (tmp_path / "run" / "metrics.json").is_file()
    record("cache of an interrupted prepare (complete: false)", "train",
           "refused naming it, with 17 of 60 clips; --allow-incomplete trains")


@pytest.mark.parametrize("option, value, says", [("--epochs", "0", "epochs must be"),
                                                 ("--batch-size", "0", "batch_size must be"),
                                                 ("--length", "0", "length must be"),
                                                 ("--length", "1000000000", "length must be")])
def test_bad_train_options_are_refused_before_any_work(trained, tmp_path, option, value, says, capsys):
    cache, _ = trained
    started = time.perf_counter()
    args = dict(zip(TINY_TRAIN[::2], TINY_TRAIN[1::2]), **{option: value})
    code, _, err = _main(capsys, "train", str(cache), "--out", str(tmp_path / "run"),
                         *[x for kv in args.items() for x in kv])
    assert code == 2 and _one_line(err) and says in err
    assert time.perf_counter() - started < 5 and not (tmp_path / "run").exists()
    record(f"train {option} {value}", "train", "exit 2 before any work, one line naming the option")


def test_unwritable_out_is_found_before_training(trained, tmp_path, capsys):
    cache, _ = trained
    blocker = tmp_path / "not a folder"
    blocker.write_text("x")
    started = time.perf_counter()
    code, _, err = _main(capsys, "train", str(cache), "--out", str(blocker / "run"), *TINY_TRAIN)
    assert code == 2 and _one_line(err) and str(blocker / "run") in err and time.perf_counter() - started < 5
    record("--out that cannot be created (under a file)", "train", "exit 2 before training, naming it")


def test_clip_names_without_video_id_are_refused_before_training(tmp_path, capsys):
    from helpers.atomic import write_json_atomic

    cache = _tiny_cache(tmp_path)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["clips"]["holiday.mp4"] = manifest["clips"].pop("tr00.000.mp4")
    write_json_atomic(cache / "manifest.json", manifest)
    started = time.perf_counter()
    code, _, err = _main(capsys, "train", str(cache), "--out", str(tmp_path / "run"), *TINY_TRAIN)
    assert code == 2 and _one_line(err) and "holiday.mp4" in err and time.perf_counter() - started < 5
    record("clip name outside <id>.<NNN>.<ext> in the cache", "train", "refused before training, naming it")


def _crafted_config(model: bytes, config: bytes) -> bytes:
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, config if item.filename == "config.json" else src.read(item.filename))
    return out.getvalue()


def test_damaged_run_folders_are_named_by_predict(trained, tmp_path, capsys):
    _, run = trained
    clip = face_clip(tmp_path / "me.000.mp4", n=8)
    model = (run / "model.keras").read_bytes()
    cases = {
        "metrics.json garbage": ("metrics.json", b"\x00{garbage", "cannot be read"),
        "model.keras truncated": ("model.keras", model[: len(model) // 3], "is damaged"),
        "hostile config.json in model.keras": (
            "model.keras", _crafted_config(model, b'{"module": "os", "class_name": "system", '
                                                  b'"config": {"command": "touch PWNED"}}'), "is damaged"),
        "garbled config.json in model.keras": ("model.keras", _crafted_config(model, b"[1, 2"), "is damaged"),
    }
    for case, (name, data, says) in cases.items():
        broken = tmp_path / case.replace(" ", "_")
        shutil.copytree(run, broken)
        (broken / name).write_bytes(data)
        code, out, err = _main(capsys, "predict", str(clip), "--model", str(broken))
        assert code == 2 and out == "" and _one_line(err), err
        assert str(broken / name) in err and says in err and "re-run" in err
        assert not any(Path(".").glob("PWNED")) and not (broken / "PWNED").exists()
        record(case, "predict", "exit 2, one line naming the file and 're-run train'")
