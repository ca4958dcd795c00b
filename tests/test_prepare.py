"""Tests for helpers.prepare.prepare (and the cache format it writes), on tiny synthetic clips."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import ANNOTATION_KEYS, TRAITS
from helpers import cache
from helpers import prepare as P
from helpers.cache import clip_cache_path, load_clip_cache, read_manifest
from helpers.faces import MIN_NEIGHBORS, HaarDetector, detector_record
from helpers.prepare import CacheSettingsError, prepare
from helpers.synthetic import gradient_background, place_face, write_video
from pool_faults import die_on_boom, die_on_one_clip

REPO = Path(__file__).resolve().parent.parent
FRAMES, SIZE = 6, 24


def write_clip(path: Path, seed: int, face: bool = True, n: int = 8) -> Path:
    """A 96x96 clip of ``n`` frames: the face photo on a random background, or the background alone."""
    rng = np.random.default_rng(seed)
    background = gradient_background(96, 96, rng)
    frames = [place_face(background, (48 + i % 3, 50), 44)[0] if face else background for i in range(n)]
    write_video(path, frames, 25)
    return path


def annotation_bytes(scores: dict[str, float]) -> bytes:
    """Real-format annotation file (protocol 2, numpy.float64 interview) from clip -> one score for all traits."""
    table: dict[str, dict] = {t: {c: float(s) for c, s in scores.items()} for t in TRAITS}
    table["interview"] = {c: np.float64(s / 2) for c, s in scores.items()}
    data = pickle.dumps(table, protocol=2)
    assert data.startswith(b"\x80\x02")
    return data


TRAIN_LABELS = {"J4GQm9j0JZ0.001.mp4": 0.1, "J4GQm9j0JZ0.002.mp4": 0.2, "x-y_z.q.000.mp4": 0.3,
                "blank.001.mp4": 0.4, "text.001.mp4": 0.5, "gone.001.mp4": 0.6}
VAL_LABELS = {"v4l.001.mp4": 0.7}


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A tiny First Impressions layout: two splits, a no-face clip, two unreadable files, labels."""
    src = tmp_path / "src"
    train = src / "train-1" / "training80_01"
    write_clip(train / "J4GQm9j0JZ0.001.mp4", 1)
    write_clip(train / "J4GQm9j0JZ0.002.mp4", 2)
    write_clip(train / "x-y_z.q.000.mp4", 3)
    write_clip(train / "blank.001.mp4", 4, face=False)
    (train / "text.001.mp4").write_text("this is not a video")
    (train / "empty.001.mp4").write_bytes(b"")  # and has no label either
    write_clip(src / "validation80_01" / "v4l.001.mp4", 5)
    (src / "annotation_training.pkl").write_bytes(annotation_bytes(TRAIN_LABELS))
    (src / "annotation_validation.pkl").write_bytes(annotation_bytes(VAL_LABELS))
    return src


EXPECTED_STATUS = {"J4GQm9j0JZ0.001.mp4": "prepared", "J4GQm9j0JZ0.002.mp4": "prepared",
                   "x-y_z.q.000.mp4": "prepared", "blank.001.mp4": "no_face", "text.001.mp4": "unreadable",
                   "empty.001.mp4": "unreadable", "v4l.001.mp4": "prepared"}


def statuses(out: Path) -> dict[str, str]:
    return {name: e["status"] for name, e in read_manifest(out)["clips"].items()}


class CountingFaces:
    """Stands in for ``video_to_faces``: counts calls, fails on 'text'/'empty' clips, no face in 'blank'.

    The face is detected in every other frame and usable in all but the last (a miss
    bridged by interpolation, then one left out), so ``found`` and ``usable`` differ.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.detectors: list = []

    def __call__(self, path: str, num_frames: int, size: int, detector=None):
        from helpers.video import VideoReadError

        name = Path(path).name
        self.calls.append(name)
        self.detectors.append(detector)
        if name.startswith(("text", "empty")):
            raise VideoReadError(f"OpenCV could not open {path}")
        n = num_frames
        face = not name.startswith("blank")
        found = (np.arange(n) % 2 == 0) & face
        usable = (np.arange(n) < n - 1) & face
        faces = np.full((n, size, size), len(self.calls) % 256, np.uint8)
        return SimpleNamespace(faces=faces, found=found, usable=usable, boxes=np.zeros((n, 4)),
                               frame_indices=np.arange(n), fps=25.0)


# --------------------------------------------------------------------------- end to end


def test_prepare_end_to_end(dataset, tmp_path):
    out = tmp_path / "cache"
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    manifest = read_manifest(out)
    assert manifest["complete"] is True
    assert manifest["settings"] == {"num_frames": FRAMES, "size": SIZE, "detector": detector_record(HaarDetector())}
    assert manifest["settings"]["detector"]["name"] == "haar-frontalface-default"
    assert statuses(out) == EXPECTED_STATUS
    clips = manifest["clips"]
    # labels: every trait of the file (five + interview) as floats, matched by clip name
    assert clips["J4GQm9j0JZ0.002.mp4"]["labels"] == {**{t: 0.2 for t in TRAITS}, "interview": 0.1}
    assert clips["v4l.001.mp4"]["labels"]["openness"] == 0.7
    assert clips["empty.001.mp4"]["labels"] is None
    assert {n: e["split"] for n, e in clips.items()} == {n: "validation" if n == "v4l.001.mp4" else "train"
                                                         for n in EXPECTED_STATUS}
    # files: prepared and no_face have one; unreadable has the error naming the clip
    for name, entry in clips.items():
        if entry["status"] == "unreadable":
            assert entry["file"] is None and name in entry["error"] and "VideoReadError" in entry["error"]
            assert not clip_cache_path(out, name).exists()
            continue
        arrays = load_clip_cache(out / entry["file"])
        assert arrays["faces"].shape == (FRAMES, SIZE, SIZE)
        assert entry["n_frames"] == FRAMES and entry["n_found"] == int(arrays["found"].sum())
        assert entry["n_usable"] == int(arrays["usable"].sum()) >= entry["n_found"]
        assert entry["fps"] == pytest.approx(25.0) and entry["video"].endswith(name)
        assert (entry["n_usable"] > 0) == (entry["status"] == "prepared")
    assert clips["blank.001.mp4"]["n_found"] == 0 and clips["blank.001.mp4"]["n_usable"] == 0
    assert clips["text.001.mp4"]["n_usable"] == 0
    files = [e for e in clips.values() if e["file"]]
    assert summary["n_frames"] == sum(e["n_frames"] for e in files) == 5 * FRAMES
    assert summary["n_usable"] == sum(e["n_usable"] for e in files) >= summary["n_found"] > 0
    assert summary["usable_rate"] == round(summary["n_usable"] / summary["n_frames"], 4)
    assert summary["found_rate"] == round(summary["n_found"] / summary["n_frames"], 4)
    # summary: counts overall and per split, both directions of label matching
    assert {k: summary[k] for k in ("clips", "prepared", "no_face", "unreadable", "labels_without_clip",
                                    "clips_without_label", "reused", "redone")} == {
        "clips": 7, "prepared": 4, "no_face": 1, "unreadable": 2, "labels_without_clip": 1,
        "clips_without_label": 1, "reused": 0, "redone": 0}
    assert summary["splits"]["train"] == {"clips": 6, "prepared": 3, "no_face": 1, "unreadable": 2, "skipped": 0,
                                          "labels_without_clip": 1, "clips_without_label": 1}
    assert summary["splits"]["validation"]["prepared"] == 1 and summary["splits"]["test"]["clips"] == 0
    assert manifest["labels_without_clip"] == ["gone.001.mp4"]
    assert manifest["clips_without_label"] == ["empty.001.mp4"]
    assert manifest["summary"] == summary
    assert json.loads(json.dumps(summary)) == summary  # the CLI prints it as JSON


def test_prepare_resumes_and_redoes_damaged_files(dataset, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    files = {n: clip_cache_path(out, n) for n, s in EXPECTED_STATUS.items() if s != "unreadable"}
    mtimes = {n: p.stat().st_mtime_ns for n, p in files.items()}
    fake = CountingFaces()
    monkeypatch.setattr(P, "_video_to_faces", fake)

    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert sorted(fake.calls) == ["empty.001.mp4", "text.001.mp4"]  # only unreadable clips are retried
    assert summary["reused"] == 5 and summary["redone"] == 0
    assert {n: p.stat().st_mtime_ns for n, p in files.items()} == mtimes
    assert statuses(out) == EXPECTED_STATUS

    # damage one file, delete another: both redone, the rest untouched
    files["x-y_z.q.000.mp4"].write_bytes(files["x-y_z.q.000.mp4"].read_bytes()[:100])
    files["blank.001.mp4"].unlink()
    fake.calls.clear()
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert sorted(fake.calls) == ["blank.001.mp4", "empty.001.mp4", "text.001.mp4", "x-y_z.q.000.mp4"]
    assert summary["redone"] == 1 and summary["reused"] == 3
    load_clip_cache(files["x-y_z.q.000.mp4"])  # readable again
    assert statuses(out) == EXPECTED_STATUS


def test_prepare_with_other_settings_is_refused(dataset, tmp_path):
    out = tmp_path / "cache"
    prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    before = read_manifest(out)["settings"]
    with pytest.raises(CacheSettingsError, match="another --out") as err:
        prepare(dataset, out, num_frames=FRAMES, size=SIZE + 8, workers=1, progress=False)
    assert "size: 24 there, 32 now" in str(err.value) and "detector:" not in str(err.value)  # only what differs
    assert read_manifest(out)["settings"] == before  # left as it was


def test_prepare_with_another_detector_is_refused(dataset, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    fake = CountingFaces()
    monkeypatch.setattr(P, "_video_to_faces", fake)
    prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert all(isinstance(d, HaarDetector) and d.min_neighbors == MIN_NEIGHBORS for d in fake.detectors)
    before = read_manifest(out)
    fake.calls.clear()
    other = HaarDetector(min_neighbors=MIN_NEIGHBORS + 1)
    with pytest.raises(CacheSettingsError, match="another --out") as err:
        prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False, detector=other)
    message = str(err.value)
    assert "detector" in message and f"'min_neighbors': {MIN_NEIGHBORS + 1}" in message
    assert str(out) in message and "delete" in message  # how to prepare it again
    assert fake.calls == [] and read_manifest(out) == before  # nothing done, nothing rewritten

    # a new folder takes the other detector, records it and hands it to video_to_faces
    prepare(dataset, tmp_path / "other", num_frames=FRAMES, size=SIZE, workers=1, progress=False, detector=other)
    assert read_manifest(tmp_path / "other")["settings"]["detector"] == detector_record(other)
    assert fake.detectors[-1] is other


def _refused_then_prepared(dataset, out, manifest, monkeypatch):
    """Write ``manifest`` (an older version's) into ``out``: readers refuse it, then prepare runs again."""
    (out / cache.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(cache.CacheVersionError, match=f"{out}.*older version.*re-run .*prepare"):
        read_manifest(out)
    fake = CountingFaces()
    monkeypatch.setattr(P, "_video_to_faces", fake)
    return prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False), fake


def test_cache_of_version_2_is_refused_then_redone_whole(dataset, tmp_path, monkeypatch):
    """A cache written before ``usable`` (version 2): readers refuse it, prepare redoes every clip."""
    out = tmp_path / "cache"
    monkeypatch.setattr(P, "_video_to_faces", CountingFaces())
    prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    manifest = read_manifest(out)
    manifest.update(version=2, settings={"num_frames": FRAMES, "size": SIZE})  # as version 2 wrote it
    for entry in manifest["clips"].values():
        entry.pop("n_usable")
        if entry["file"]:
            path = out / entry["file"]
            arrays = dict(np.load(path))
            del arrays["usable"]
            np.savez(path, **arrays)
    summary, fake = _refused_then_prepared(dataset, out, manifest, monkeypatch)
    assert sorted(fake.calls) == sorted(EXPECTED_STATUS) and summary["redone"] == 5 and summary["reused"] == 0
    manifest = read_manifest(out)
    assert manifest["version"] == cache.MANIFEST_VERSION and manifest["settings"]["detector"] == detector_record()
    assert all("n_usable" in e for e in manifest["clips"].values())


def test_files_of_other_settings_without_manifest_are_redone(dataset, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    (out / cache.MANIFEST_NAME).unlink()  # lost: only the clip files tell
    fake = CountingFaces()
    monkeypatch.setattr(P, "_video_to_faces", fake)
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE * 2, workers=1, progress=False)
    assert summary["redone"] == 5 and len(fake.calls) == 7
    assert load_clip_cache(clip_cache_path(out, "v4l.001.mp4"))["faces"].shape[1:] == (SIZE * 2, SIZE * 2)


def test_prepare_workers_2_matches_one_process(dataset, tmp_path):
    one = prepare(dataset, tmp_path / "one", num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    two = prepare(dataset, tmp_path / "two", num_frames=FRAMES, size=SIZE, workers=2, progress=False)
    assert two["workers"] == 2 and one["workers"] == 1
    assert statuses(tmp_path / "two") == EXPECTED_STATUS
    for key in ("prepared", "no_face", "unreadable", "splits"):
        assert one[key] == two[key]
    for name, status in EXPECTED_STATUS.items():
        if status != "unreadable":
            a = load_clip_cache(clip_cache_path(tmp_path / "one", name))
            b = load_clip_cache(clip_cache_path(tmp_path / "two", name))
            for key in ("faces", "found", "usable"):
                assert np.array_equal(a[key], b[key]), key


# --------------------------------------------------------------------------- a pool that breaks
# Faults are injected, never waited for: a worker that kills itself on chosen clips
# (tests/pool_faults.py), and a pool whose submit raises at chosen calls (what a pool
# breaking between two submits does).


def _task(name: str) -> P.PrepareTask:
    return P.PrepareTask(name, f"/videos/{name}", "", 1, 1)


class FlakyPool:
    """A real process pool whose ``submit`` raises ``error`` on the chosen calls (counted over all pools)."""

    calls = 0

    def __init__(self, workers: int, fail_on: set[int], error: BaseException):
        self.pool = P.ProcessPoolExecutor(workers, mp_context=P._pool_context())
        self.fail_on, self.error = fail_on, error

    def submit(self, fn, *args):
        FlakyPool.calls += 1
        if FlakyPool.calls in self.fail_on:
            raise self.error
        return self.pool.submit(fn, *args)

    def shutdown(self, **kwargs):
        self.pool.shutdown(**kwargs)

    @property
    def _processes(self):
        return self.pool._processes

    @property
    def _broken(self):
        return self.pool._broken


def flaky(monkeypatch, fail_on: set[int], error: BaseException) -> None:
    FlakyPool.calls = 0
    monkeypatch.setattr(P, "_new_pool", lambda workers: FlakyPool(workers, fail_on, error))


def check_pool_results(results: dict, names: list[str]) -> None:
    assert sorted(results) == sorted(names)  # every clip once, none lost, none twice
    for name, fields in results.items():
        if name.startswith("boom"):
            assert fields["status"] == "unreadable" and "worker process died" in fields["error"]
            assert f"/videos/{name}" in fields["error"]
        else:
            assert fields == {"status": "prepared"}


@pytest.mark.parametrize("booms", [(0,), (3, 7), (9,), (0, 1, 2)], ids=["first", "two", "last", "three-in-a-row"])
def test_pool_survives_workers_dying(booms):
    names = [f"{'boom' if i in booms else 'ok'}{i}.001.mp4" for i in range(10)]
    check_pool_results(dict(P._pool_results([_task(n) for n in names], 2, run=die_on_boom)), names)


def test_pool_survives_a_sigkilled_worker():
    names = [f"ok{i}.001.mp4" for i in range(5)] + ["boomkill.001.mp4"] + [f"ok{i}.002.mp4" for i in range(3)]
    check_pool_results(dict(P._pool_results([_task(n) for n in names], 2, run=die_on_boom)), names)


@pytest.mark.parametrize("fail_on", [{1}, {3}, {5}, {2, 3}, {6, 9}], ids=str)
@pytest.mark.parametrize("error", [OSError(9, "Bad file descriptor"), P.BrokenProcessPool("pool broke")],
                         ids=["EBADF", "broken"])
def test_pool_survives_submit_failing(monkeypatch, fail_on, error):
    """The bug once seen as a flaky test: submit raising while the pool breaks ended prepare."""
    flaky(monkeypatch, fail_on, error)
    names = [f"{'boom' if i == 4 else 'ok'}{i}.001.mp4" for i in range(8)]
    check_pool_results(dict(P._pool_results([_task(n) for n in names], 2, run=die_on_boom)), names)


def test_pool_that_never_takes_a_clip_gives_up_with_the_error(monkeypatch):
    flaky(monkeypatch, set(range(1, 100)), OSError(24, "Too many open files"))
    monkeypatch.setattr(P, "POOL_RETRY_S", 0.0)
    with pytest.raises(RuntimeError, match="Too many open files.*--workers 1"):
        list(P._pool_results([_task("ok.001.mp4")], 2, run=die_on_boom))
    assert FlakyPool.calls == P.MAX_POOL_STARTS


@pytest.mark.parametrize("fail_on", [set(), {2}, {5}], ids=["kill", "kill+submit@2", "kill+submit@5"])
def test_prepare_finishes_when_the_pool_breaks(dataset, tmp_path, monkeypatch, fail_on):
    """End to end: every clip in the manifest, every cache file loads, only the killer is unreadable."""
    monkeypatch.setattr(P, "run_task", die_on_one_clip)
    if fail_on:
        flaky(monkeypatch, fail_on, OSError(9, "Bad file descriptor"))
    out = tmp_path / "cache"
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=2, progress=False)
    manifest = read_manifest(out)
    assert manifest["complete"] and summary["done"] == len(EXPECTED_STATUS)
    assert statuses(out) == {**EXPECTED_STATUS, "x-y_z.q.000.mp4": "unreadable"}
    assert "worker process died" in manifest["clips"]["x-y_z.q.000.mp4"]["error"]
    for name, entry in manifest["clips"].items():
        if entry["file"] is not None:
            assert load_clip_cache(out / entry["file"])["faces"].shape == (FRAMES, SIZE, SIZE)
    assert not list((out / cache.CLIPS_DIR).glob(".*"))  # no partial file of a killed worker left


def test_killed_run_keeps_finished_clips_and_resumes(dataset, tmp_path, monkeypatch):
    """SIGKILL part-way (the 4th clip): the manifest holds what finished; the next run does the rest."""
    out = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from helpers import prepare as P
        real, calls = P._video_to_faces, []
        def dying(path, num_frames, size, detector=None):
            calls.append(path)
            if len(calls) == 4:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, num_frames, size, detector)
        P._video_to_faces = dying
        P.MANIFEST_EVERY_S = 0.0
        P.prepare({str(dataset)!r}, {str(out)!r}, num_frames={FRAMES}, size={SIZE}, workers=1, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    manifest = read_manifest(out)
    assert manifest["complete"] is False
    done = sorted(manifest["clips"])
    assert len(done) == 3 and manifest["summary"]["done"] == 3 and manifest["summary"]["clips"] == 7
    assert not list((out / cache.CLIPS_DIR).glob(".*.tmp"))  # no half-written file left behind

    fake = CountingFaces()
    monkeypatch.setattr(P, "_video_to_faces", fake)
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    finished = [n for n in done if EXPECTED_STATUS[n] != "unreadable"]
    assert sorted(fake.calls) == sorted(set(EXPECTED_STATUS) - set(finished))
    assert summary["reused"] == len(finished) and read_manifest(out)["complete"] is True
    assert set(statuses(out)) == set(EXPECTED_STATUS)


def test_manifest_written_during_the_run(dataset, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    seen: list[int] = []
    fake = CountingFaces()

    def watching(path, num_frames, size, detector=None):
        manifest = read_manifest(out)  # written before the first clip, then after each (interval 0)
        seen.append(len(manifest["clips"]))
        assert manifest["complete"] is False
        return fake(path, num_frames, size, detector)

    monkeypatch.setattr(P, "_video_to_faces", watching)
    monkeypatch.setattr(P, "MANIFEST_EVERY_S", 0.0)
    prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert seen == list(range(7))


def test_prepare_from_nested_zips_with_cache_inside_source(tmp_path):
    src = tmp_path / "src"
    clips = tmp_path / "made"
    names = ["J4GQm9j0JZ0.001.mp4", "J4GQm9j0JZ0.002.mp4"]
    for i, name in enumerate(names):
        write_clip(clips / name, 10 + i)
    inner = tmp_path / "training80_01.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        for name in names:
            zf.write(clips / name, name)
    src.mkdir()
    with zipfile.ZipFile(src / "train-1.zip", "w") as zf:
        zf.write(inner, "training80_01.zip")
    with zipfile.ZipFile(src / "train-annotation.zip", "w") as zf:  # labels zipped too, as shipped
        zf.writestr("annotation_training.pkl", annotation_bytes({n: 0.25 for n in names}))
    out = src / "cache"  # inside the source: must not be searched as part of the dataset
    for _ in range(2):
        summary = prepare(src, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
        assert summary["clips"] == 2 and summary["splits"]["train"]["prepared"] == 2
        assert summary["clips_without_label"] == 0 and summary["labels_without_clip"] == 0
    assert (out / "extracted/train-1/training80_01/J4GQm9j0JZ0.001.mp4").is_file()
    assert summary["reused"] == 2
    manifest = read_manifest(out)
    assert manifest["clips"]["J4GQm9j0JZ0.002.mp4"]["labels"]["interview"] == 0.125
    assert str(out / "extracted/train-annotation/annotation_training.pkl") in manifest["label_files"]


def test_explicit_labels_and_bad_arguments(dataset, tmp_path):
    out = tmp_path / "cache"
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False,
                      labels=[dataset / "annotation_validation.pkl"])
    assert summary["clips_without_label"] == 6 and summary["labels_without_clip"] == 0
    with pytest.raises(FileNotFoundError, match="nowhere.pkl"):
        prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False,
                labels=[tmp_path / "nowhere.pkl"])
    with pytest.raises(FileNotFoundError, match="not found"):
        prepare(tmp_path / "missing", out, progress=False)
    with pytest.raises(ValueError, match="must not be the dataset folder"):
        prepare(dataset, dataset, progress=False)
    with pytest.raises(ValueError, match="workers"):
        prepare(dataset, out, workers=0, progress=False)


def test_cli_prepare_prints_summary(dataset, tmp_path):
    out = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-m", "helpers", "prepare", str(dataset), "--out", str(out),
                           "--num-frames", str(FRAMES), "--size", str(SIZE), "--workers", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # A table per split and status, then the cache and what to run next.
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[1:4]}
    assert set(rows) == {"train", "validation", "test"}
    heads = proc.stdout.splitlines()[0].split()
    totals = {h: sum(int(r[i]) for r in rows.values()) for i, h in enumerate(heads[:4])}
    assert totals == {"clips": 7, "prepared": 4, "no_face": 1, "unreadable": 2}
    assert f"python -m helpers train {out}" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "helpers", "prepare", str(dataset), "--out", str(out),
                           "--num-frames", str(FRAMES), "--size", str(SIZE), "--workers", "1", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    summary = json.loads(proc.stdout)
    assert summary["prepared"] == 4 and summary["unreadable"] == 2 and summary["no_face"] == 1
    assert set(read_manifest(out)["clips"]["v4l.001.mp4"]["labels"]) == set(ANNOTATION_KEYS)


def test_empty_source_is_an_error_naming_the_folder_and_what_was_searched(tmp_path):
    empty = tmp_path / "my videos"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no clips here")
    with pytest.raises(ValueError, match=r"no clip found") as err:
        prepare(empty, tmp_path / "cache", progress=False)
    assert str(empty) in str(err.value) and ".mp4" in str(err.value) and ".zip" in str(err.value)
    proc = subprocess.run([sys.executable, "-m", "helpers", "prepare", str(empty), "--out", str(tmp_path / "c2")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no clip found" in proc.stderr and "Traceback" not in proc.stderr


def test_progress_bar_on_stderr_only_when_asked(dataset, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(P, "_video_to_faces", CountingFaces())
    prepare(dataset, tmp_path / "quiet", num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    prepare(dataset, tmp_path / "shown", num_frames=FRAMES, size=SIZE, workers=1, progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "prepare" in err and "7/7" in err


def test_reader_warnings_are_recorded_and_kept_on_resume(dataset, tmp_path, monkeypatch):
    import warnings

    fake = CountingFaces()

    def warning_faces(path, num_frames, size, detector=None):
        if "x-y_z" in path:
            warnings.warn(f"{path}: decoding ended after 5 frames; the clip may be truncated")
        return fake(path, num_frames, size, detector)

    monkeypatch.setattr(P, "_video_to_faces", warning_faces)
    out = tmp_path / "cache"
    for run in range(2):
        prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
        clips = read_manifest(out)["clips"]
        assert "truncated" in clips["x-y_z.q.000.mp4"]["warning"] and "x-y_z.q.000.mp4" in clips["x-y_z.q.000.mp4"]["warning"]
        assert clips["v4l.001.mp4"]["warning"] is None
    assert fake.calls.count("x-y_z.q.000.mp4") == 1  # the second run reused it, warning and all


def test_cache_of_an_older_version_is_refused_and_prepare_rebuilds_it(dataset, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    manifest = read_manifest(out)
    manifest.update(version=1, settings={"frames": FRAMES, "size": SIZE})  # as version 1 wrote it
    summary, fake = _refused_then_prepared(dataset, out, manifest, monkeypatch)
    assert read_manifest(out)["version"] == cache.MANIFEST_VERSION
    assert summary["reused"] == 5 and set(fake.calls) == {"text.001.mp4", "empty.001.mp4"}  # valid files kept


# --------------------------------------------------------------------------- the dataset's kind, clip names


def test_manifest_records_the_kind_the_source_says(dataset, tmp_path, monkeypatch):
    from helpers.dataset import DATASET_FILE, DatasetError, write_dataset_kind

    monkeypatch.setattr(P, "_video_to_faces", CountingFaces())
    prepare(dataset, tmp_path / "a", num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert read_manifest(tmp_path / "a")["dataset"] == "first_impressions"
    write_dataset_kind(dataset, "demo")
    prepare(dataset, tmp_path / "b", num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert read_manifest(tmp_path / "b")["dataset"] == "demo"
    (dataset / DATASET_FILE).write_text("[1, 2")
    with pytest.raises(DatasetError, match=re.escape(str(dataset / DATASET_FILE)) + ".*fix or delete it"):
        prepare(dataset, tmp_path / "c", num_frames=FRAMES, size=SIZE, workers=1, progress=False)


def test_clip_names_outside_the_rule_are_skipped_naming_the_file(dataset, tmp_path, monkeypatch):
    from helpers.dataset import CLIP_NAME_PATTERN, is_clip_name

    train = dataset / "train-1" / "training80_01"
    for name in ("holiday.mp4", "J4GQm9j0JZ0.x01.mp4"):
        write_clip(train / name, 9)
    fake = CountingFaces()
    monkeypatch.setattr(P, "_video_to_faces", fake)
    out = tmp_path / "cache"
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    clips = read_manifest(out)["clips"]
    for name in ("holiday.mp4", "J4GQm9j0JZ0.x01.mp4"):
        assert not is_clip_name(name)
        entry = clips[name]
        assert entry["status"] == "skipped" and entry["file"] is None, entry
        assert str(train / name) in entry["error"] and CLIP_NAME_PATTERN in entry["error"]
        assert name not in fake.calls and not clip_cache_path(out, name).exists()
    assert summary["skipped"] == 2 and summary["splits"]["train"]["skipped"] == 2
    assert {n: s for n, s in statuses(out).items() if n in EXPECTED_STATUS} == EXPECTED_STATUS
    again = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert again["skipped"] == 2 and again["reused"] == 5  # still skipped on a re-run, never counted kept


def test_two_clips_taking_one_cache_file_are_reported_not_overwritten(dataset, tmp_path, monkeypatch):
    train = dataset / "train-1" / "training80_01"
    upper = write_clip(train / "J4GQm9j0JZ0.001.MP4", 7)  # beside the labelled J4GQm9j0JZ0.001.mp4
    fake = CountingFaces()
    monkeypatch.setattr(P, "_video_to_faces", fake)
    out = tmp_path / "cache"
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    clips = read_manifest(out)["clips"]
    entry = clips["J4GQm9j0JZ0.001.MP4"]
    assert entry["status"] == "skipped" and entry["file"] is None
    assert str(upper) in entry["error"] and str(train / "J4GQm9j0JZ0.001.mp4") in entry["error"]
    assert str(clip_cache_path(out, "J4GQm9j0JZ0.001.mp4")) in entry["error"]
    assert clips["J4GQm9j0JZ0.001.mp4"]["status"] == "prepared"  # the labelled one is kept
    assert fake.calls.count("J4GQm9j0JZ0.001.mp4") == 1 and "J4GQm9j0JZ0.001.MP4" not in fake.calls
    assert summary["skipped"] == 1


def test_cli_prints_skipped_clips(dataset, tmp_path, monkeypatch, capsys):
    from helpers.__main__ import main

    write_clip(dataset / "train-1" / "holiday.mp4", 9)
    monkeypatch.setattr(P, "_video_to_faces", CountingFaces())
    out = tmp_path / "cache"
    assert main(["prepare", str(dataset), "--out", str(out), "--num-frames", str(FRAMES), "--size", str(SIZE),
                 "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "skipped" in text.splitlines()[0]
    assert "1 clips skipped" in text and "manifest.json" in text


# --------------------------------------------------------------------------- one run per cache folder

SLOW_PREPARE = textwrap.dedent("""
    import sys, time
    from types import SimpleNamespace
    import numpy as np
    from helpers import prepare as P

    def slow(path, num_frames, size, detector=None):
        time.sleep(0.4)
        n = num_frames
        return SimpleNamespace(faces=np.zeros((n, size, size), np.uint8), found=np.ones(n, bool),
                               usable=np.ones(n, bool), boxes=np.zeros((n, 4)), frame_indices=np.arange(n), fps=25.0)

    P._video_to_faces = slow
    if __name__ == "__main__":
        print(P.prepare(sys.argv[1], sys.argv[2], num_frames=6, size=24, workers=1, progress=False)["done"])
""")


def _wait_for_lock(out: Path, pid: int, proc: subprocess.Popen) -> None:
    lock = out / P.LOCK_NAME
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if lock.is_file() and lock.read_text().strip() == str(pid):
            return
        time.sleep(0.02)
    raise AssertionError(f"the first prepare never held {lock} (rc {proc.poll()})")


def test_second_prepare_on_one_folder_is_refused_and_the_first_finishes(dataset, tmp_path):
    script = tmp_path / "slow_prepare.py"
    script.write_text(SLOW_PREPARE)
    out = tmp_path / "cache"
    first = subprocess.Popen([sys.executable, str(script), str(dataset), str(out)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock(out, first.pid, first)
        deadline = time.monotonic() + 60
        while not (out / cache.MANIFEST_NAME).is_file() and time.monotonic() < deadline:
            time.sleep(0.02)  # written once the first run has found its clips
        in_flight = out / "clips" / ".J4GQm9j0JZ0.001.npz.abc.tmp"  # stands for the first run's partial write
        in_flight.parent.mkdir(parents=True, exist_ok=True)
        in_flight.write_bytes(b"partial")
        manifest_before = (out / cache.MANIFEST_NAME).read_bytes()
        second = subprocess.run([sys.executable, "-m", "helpers", "prepare", str(dataset), "--out", str(out),
                                 "--num-frames", str(FRAMES), "--size", str(SIZE), "--workers", "1"],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert str(out) in second.stderr and f"another run (process {first.pid})" in second.stderr
        assert in_flight.exists()  # the loser deleted nothing of the first run's
        # the second wrote nothing (the first, 7 clips of 0.4 s, rewrites it only at its end)
        assert first.poll() is None and (out / cache.MANIFEST_NAME).read_bytes() == manifest_before
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    assert int(stdout.strip()) == len(EXPECTED_STATUS)
    manifest = read_manifest(out)
    assert manifest["complete"] is True and len(manifest["clips"]) == len(EXPECTED_STATUS)
    assert manifest["settings"]["num_frames"] == 6  # the first run's, never rewritten by the second


def test_a_killed_run_leaves_no_lock(dataset, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from helpers.prepare import cache_lock\n"
                               "with cache_lock(sys.argv[1]):\n    time.sleep(60)", str(out)], cwd=REPO)
    try:
        _wait_for_lock(out, holder.pid, holder)
        with pytest.raises(P.CacheBusyError, match=f"{re.escape(str(out))} is being prepared.*{holder.pid}"):
            prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.setattr(P, "_video_to_faces", CountingFaces())
    assert prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)["done"] == 7


def test_lock_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with P.cache_lock(tmp_path):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / P.LOCK_NAME).stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- damaged headers, full disks


def test_cache_file_with_a_huge_header_is_redone(dataset, tmp_path, monkeypatch):
    from test_cache import with_faces_header

    monkeypatch.setattr(P, "_video_to_faces", CountingFaces())
    out = tmp_path / "cache"
    prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    crafted = clip_cache_path(out, "J4GQm9j0JZ0.002.mp4")
    with_faces_header(crafted, (10**9, SIZE, SIZE))
    summary = prepare(dataset, out, num_frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert summary["redone"] == 1 and summary["reused"] == 4
    assert load_clip_cache(crafted)["faces"].shape == (FRAMES, SIZE, SIZE)


@pytest.mark.parametrize("where", ["clip", "manifest"])
def test_full_disk_is_one_error_line_naming_the_file(dataset, tmp_path, monkeypatch, capsys, where):
    import errno

    from helpers.__main__ import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(P, "_video_to_faces", CountingFaces())
    monkeypatch.setattr(*((np, "savez", full) if where == "clip" else (cache, "write_json_atomic", full)))
    out = tmp_path / "cache"
    code = main(["prepare", str(dataset), "--out", str(out), "--num-frames", str(FRAMES), "--size", str(SIZE),
                 "--workers", "1"])
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.strip() and not line.startswith("prepare:")]  # bar aside
    assert code == 2 and len(err) == 1 and "Traceback" not in stderr, err
    named = out / "clips" if where == "clip" else out / cache.MANIFEST_NAME
    assert "CacheWriteError" in err[0] and str(named) in err[0] and "disk is full" in err[0]
