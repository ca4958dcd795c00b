"""The prepared cache: one small file per clip plus a manifest.

Layout of a cache folder::

    CACHE/
      manifest.json          # settings, one entry per clip, summary (see ``read_manifest``)
      clips/<clip stem>.npz  # faces uint8 [n, s, s], found bool [n], boxes float32 [n, 4],
                             # frame_indices int64 [n], fps float64 scalar

A clip entry in ``manifest["clips"][clip_name]`` (``clip_name`` is the file name, e.g.
``J4GQm9j0JZ0.003.mp4``) holds: ``split`` ("train", "validation", "test" or None),
``status`` ("prepared", "no_face" or "unreadable"), ``file`` (path of the .npz relative to
the cache, or None), ``labels`` (trait -> float, or None), ``n_frames``, ``n_found``,
``fps``, ``error`` and ``warning`` (text or None), and ``video`` (the source clip's path).

Top level of the manifest (written by ``prepare``)::

    {"version": 1, "complete": true,            # false while a run is under way or was killed
     "settings": {"frames": 32, "size": 48},
     "source": "...", "label_files": {"<path>": "train", ...},
     "archives": {"extracted": [...], "skipped": [{"archive": ..., "reason": ...}]},
     "labels_without_clip": [...], "clips_without_label": [...],
     "split_conflicts": [{"clip": ..., "folder": "train", "annotation": "test"}, ...],
     "summary": {...},                          # what ``prepare`` returns
     "clips": {"J4GQm9j0JZ0.003.mp4": {...}, ...}}

Every file is written atomically (a temporary name in the same folder, then a rename),
so an interrupted run never leaves a half-written file under its final name.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST_NAME = "manifest.json"
CLIPS_DIR = "clips"
MANIFEST_VERSION = 1

#: Arrays every cache file holds, with their dtype kind and number of dimensions.
CACHE_ARRAYS: dict[str, tuple[str, int]] = {
    "faces": ("u", 3),
    "found": ("b", 1),
    "boxes": ("f", 2),
    "frame_indices": ("i", 1),
    "fps": ("f", 0),
}


class CacheFileError(ValueError):
    """A cache file is missing, unreadable or malformed; the message names it."""


def clip_cache_path(cache_dir: Path, clip_name: str) -> Path:
    """Where the cache file of ``clip_name`` (e.g. ``abc.003.mp4``) lives."""
    return Path(cache_dir) / CLIPS_DIR / (Path(clip_name).stem + ".npz")


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_clip_cache(path: Path, faces: np.ndarray, found: np.ndarray, boxes: np.ndarray,
                    frame_indices: np.ndarray, fps: float) -> None:
    """Write one clip's face sequence to ``path`` (.npz), atomically."""
    arrays = {
        "faces": np.asarray(faces, dtype=np.uint8),
        "found": np.asarray(found, dtype=bool),
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "frame_indices": np.asarray(frame_indices, dtype=np.int64),
        "fps": np.float64(fps),
    }
    _atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def load_clip_cache(path: Path) -> dict[str, np.ndarray]:
    """Read and check one cache file; raises ``CacheFileError`` naming it if it is damaged."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in CACHE_ARRAYS if name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CacheFileError(f"cache file {path} cannot be read ({exc}); delete it and re-run prepare") from exc
    missing = sorted(set(CACHE_ARRAYS) - set(arrays))
    if missing:
        raise CacheFileError(f"cache file {path} lacks {missing}; delete it and re-run prepare")
    for name, (kind, ndim) in CACHE_ARRAYS.items():
        a = arrays[name]
        if a.dtype.kind != kind or a.ndim != ndim:
            raise CacheFileError(f"cache file {path}: '{name}' has dtype {a.dtype} and {a.ndim} dims, "
                                 f"expected kind {kind!r} and {ndim} dims; re-run prepare")
    n = len(arrays["faces"])
    faces = arrays["faces"]
    if not (len(arrays["found"]) == len(arrays["boxes"]) == len(arrays["frame_indices"]) == n) \
            or arrays["boxes"].shape[1:] != (4,) or faces.shape[1] != faces.shape[2]:
        raise CacheFileError(f"cache file {path} has inconsistent array shapes; re-run prepare")
    return arrays


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path``, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False).encode("utf-8")
    _atomic_write(Path(path), lambda f: f.write(text))


def read_manifest(cache_dir: Path) -> dict[str, Any]:
    """Load ``CACHE/manifest.json``; a clear error when the folder is not a prepared cache."""
    path = Path(cache_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m helpers prepare SOURCE --out {cache_dir}` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheFileError(f"manifest {path} cannot be read ({exc}); re-run prepare to rebuild it") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("clips"), dict):
        raise CacheFileError(f"manifest {path} has no 'clips' table; re-run prepare to rebuild it")
    return manifest


# --------------------------------------------------------------------------- prepare

#: Folder of the cache where the distributed zips are unpacked.
EXTRACTED_DIR = "extracted"
#: Seconds between manifest writes during a run. A killed run loses no finished clip (each
#: has its own file); the next run rebuilds the manifest lines from those files.
MANIFEST_EVERY_S = 10.0
#: Clip statuses, in the order summaries list them.
STATUSES: tuple[str, ...] = ("prepared", "no_face", "unreadable")


class CacheSettingsError(ValueError):
    """The cache folder was prepared with other settings (frames, size)."""


def _video_to_faces(path: str, frames: int, size: int):
    """``helpers.faces.video_to_faces``, imported on first use (tests replace this function)."""
    from helpers.faces import video_to_faces

    return video_to_faces(path, num_frames=frames, size=size)


def prepare_clip(video: str, target: str, frames: int, size: int) -> dict[str, Any]:
    """Turn one clip into its cache file; returns its manifest fields (small: no arrays).

    A clip that cannot be read is not an error here: it comes back with status
    "unreadable" and the error text, so a long run goes on past it. Warnings of the
    reader (say, a truncated clip) come back as ``warning``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            seq = _video_to_faces(video, frames, size)
            error = None
        except Exception as exc:  # any failure of one clip; the run must go on to the next
            seq, error = None, f"{type(exc).__name__}: {exc}"
    warning = "; ".join(dict.fromkeys(str(w.message) for w in caught)) or None
    if seq is None:
        return {"status": "unreadable", "file": None, "n_frames": 0, "n_found": 0, "fps": None,
                "error": error, "warning": warning}
    save_clip_cache(Path(target), seq.faces, seq.found, seq.boxes, seq.frame_indices, seq.fps)
    n_found = int(np.count_nonzero(seq.found))
    return {"status": "prepared" if n_found else "no_face", "file": None, "n_frames": int(len(seq.faces)),
            "n_found": n_found, "fps": float(seq.fps), "error": None, "warning": warning}


def _prepare_task(task: tuple[str, str, str, int, int]) -> tuple[str, dict[str, Any]]:
    """``prepare_clip`` for a pool: (clip name, video, target, frames, size) -> (clip name, fields)."""
    name, *args = task
    return name, prepare_clip(*args)


def _init_worker() -> None:
    """Pool initializer: one OpenCV thread per worker process (the processes are the parallelism)."""
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which ends the pool
    cv2.setNumThreads(1)


def _cached_fields(path: Path, frames: int, size: int) -> dict[str, Any] | None:
    """Manifest fields of a finished cache file, or None if it is damaged or of other settings."""
    try:
        arrays = load_clip_cache(path)
    except CacheFileError:
        return None
    faces = arrays["faces"]
    if faces.shape[1] != size or len(faces) > frames:
        return None
    n_found = int(np.count_nonzero(arrays["found"]))
    return {"status": "prepared" if n_found else "no_face", "n_frames": int(len(faces)), "n_found": n_found,
            "fps": float(arrays["fps"]), "error": None, "warning": None}


def _previous_clips(out: Path, settings: dict[str, int]) -> dict[str, Any]:
    """Clip entries of an earlier run's manifest; raises ``CacheSettingsError`` if its settings differ."""
    try:
        manifest = read_manifest(out)
    except (FileNotFoundError, CacheFileError):
        return {}  # none, or damaged: rebuilt from the clip files
    old = manifest.get("settings")
    if isinstance(old, dict) and {k: old.get(k) for k in settings} != settings:
        raise CacheSettingsError(
            f"{out} was prepared with {old}, not {settings}. A cache holds one setting: choose another "
            f"--out, or delete {out / MANIFEST_NAME} and {out / CLIPS_DIR} to prepare it again")
    return manifest["clips"]


def _pool_context():
    """forkserver where there is one (safe after TensorFlow started threads, and fast), else spawn."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # Workers fork from a server that has imported these once; replaces the default
        # ['__main__'], so a script or notebook is never re-run in the server.
        ctx.set_forkserver_preload(["helpers.cache", "helpers.faces"])
        return ctx
    return mp.get_context("spawn")


def _crashed_fields(error: str) -> dict[str, Any]:
    return {"status": "unreadable", "file": None, "n_frames": 0, "n_found": 0, "fps": None,
            "error": error, "warning": None}


def _pool_results(tasks: list[tuple[str, str, str, int, int]], workers: int):
    """Yield (clip name, fields) from a process pool as clips finish, surviving crashed workers.

    At most ``2 * workers`` clips are in flight, so memory does not grow with the number of
    clips. A worker that dies (a decoder crash on a damaged clip, the OOM killer) breaks
    the pool; the clips that were in flight are then retried one at a time in a new pool,
    so the clip that kills a worker on its own is recorded "unreadable" and the rest go on.
    """
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pending, suspects = deque(tasks), deque()
    while pending or suspects:
        executor = ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=_init_worker)
        inflight: dict[Any, tuple[str, str, str, int, int]] = {}
        solo = None  # the suspect running alone, if any
        broken = False
        try:
            while (pending or suspects or inflight) and not broken:
                if suspects:
                    if not inflight:
                        solo = suspects.popleft()
                        inflight[executor.submit(_prepare_task, solo)] = solo
                else:
                    while pending and len(inflight) < 2 * workers:
                        task = pending.popleft()
                        inflight[executor.submit(_prepare_task, task)] = task
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    task = inflight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if task is solo:
                            result = (task[0], _crashed_fields(
                                f"the worker process died while reading {task[1]} (a crash in the "
                                "video decoder, or out of memory); check the clip plays"))
                        else:
                            suspects.append(task)
                            continue
                    if task is solo:
                        solo = None
                    yield result
            suspects.extend(inflight.values())  # in flight when the pool broke: retried one by one
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def _results(tasks: list[tuple[str, str, str, int, int]], workers: int):
    """Yield (clip name, fields) as clips finish: in this process, or from a pool of ``workers``."""
    if workers <= 1:
        for task in tasks:
            yield _prepare_task(task)
        return
    yield from _pool_results(tasks, workers)


class _Plan:
    """What a prepare run works on: clips, labels, splits and the archives unpacked."""

    def __init__(self, source: Path, out: Path, labels: list[Path] | None, progress: bool) -> None:
        from helpers import dataset as ds

        self.source = source
        extracted = out / EXTRACTED_DIR
        if source.is_file():
            if source.suffix.lower() != ".zip":
                raise ValueError(f"prepare source {source} is a file but not a .zip; pass the dataset folder")
            root, archives, roots = source.parent, [source], [extracted]
        else:
            root, archives, roots = source, ds.find_archives(source, exclude=[out]), [source, extracted]
        self.archives = ds.extract_archives(archives, root, extracted, progress=progress, exclude=[out])
        self.clips = ds.find_clips(roots, exclude=[out])
        if labels is None:
            if source.is_file():  # beside the zip, not the whole folder tree it sits in
                files = sorted(p for p in root.glob("*.pkl") if "annotation" in p.name.lower())
            else:
                files = ds.find_annotation_files(source, exclude=[out])
            labels = files + ds.find_annotation_files(extracted)
        for path in labels:
            if not Path(path).is_file():
                raise FileNotFoundError(f"annotation file {path} not found")
        self.labels = ds.collect_labels(labels)
        self.match = ds.match_labels(self.clips, self.labels.by_clip)
        folder = ds.clip_splits(self.clips, roots)
        # The annotation file's split wins: it is the official assignment of a labelled clip.
        self.split = {n: self.labels.split.get(n) or folder[n] for n in self.clips}
        self.split_conflicts = [
            {"clip": n, "folder": folder[n], "annotation": self.labels.split[n]}
            for n in sorted(self.clips)
            if folder[n] and self.labels.split.get(n) and folder[n] != self.labels.split[n]]

    def entry(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The manifest entry of one clip."""
        has_file = fields["status"] != "unreadable"
        return {
            "split": self.split[name],
            "status": fields["status"],
            "file": clip_cache_path(Path(), name).as_posix() if has_file else None,
            "labels": self.labels.by_clip.get(name),
            "n_frames": fields["n_frames"],
            "n_found": fields["n_found"],
            "fps": fields["fps"],
            "error": fields["error"],
            "warning": fields["warning"],
            "video": str(self.clips[name]),
        }

    def summary(self, entries: dict[str, dict[str, Any]], out: Path, **extra: Any) -> dict[str, Any]:
        """Counts overall and per split (clips of no split under "unassigned")."""
        def zero() -> dict[str, int]:
            return {"clips": 0, **{s: 0 for s in STATUSES}, "labels_without_clip": 0, "clips_without_label": 0}

        splits = {s: zero() for s in ("train", "validation", "test", "unassigned")}
        for entry in entries.values():
            row = splits[entry["split"] or "unassigned"]
            row["clips"] += 1
            row[entry["status"]] += 1
        for name in self.match.clips_without_label:
            splits[self.split[name] or "unassigned"]["clips_without_label"] += 1
        for name in self.match.labels_without_clip:
            splits[self.labels.split.get(name) or "unassigned"]["labels_without_clip"] += 1
        if not any(splits["unassigned"].values()):
            del splits["unassigned"]
        return {
            "cache": str(out),
            "clips": len(self.clips),
            "done": len(entries),
            **{s: sum(r[s] for r in splits.values()) for s in STATUSES},
            "labels_without_clip": len(self.match.labels_without_clip),
            "clips_without_label": len(self.match.clips_without_label),
            "split_conflicts": len(self.split_conflicts),
            **extra,
            "splits": splits,
        }

    def manifest(self, entries: dict[str, dict[str, Any]], settings: dict[str, int], complete: bool,
                 summary: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "complete": complete,
            "settings": settings,
            "source": str(self.source),
            "label_files": self.labels.files,
            "archives": {"extracted": [str(p) for p in self.archives.folders], "skipped": self.archives.skipped},
            "labels_without_clip": self.match.labels_without_clip,
            "clips_without_label": self.match.clips_without_label,
            "split_conflicts": self.split_conflicts,
            "summary": summary,
            "clips": {name: entries[name] for name in sorted(entries)},
        }


def prepare(source: Path, out: Path, frames: int = 32, size: int = 48, workers: int | None = None,
            labels: list[Path] | None = None, progress: bool = True) -> dict[str, Any]:
    """Turn every clip under ``source`` into a cached face sequence in ``out``; returns a summary.

    ``source``: a folder with the clips (extracted, any nesting) and/or the distributed
    zips (unpacked into ``out/extracted/``), or one zip. Labels come from the annotation
    pickles found there (``*annotation*.pkl``) unless ``labels`` lists the files.

    Resumable: a clip whose cache file exists and loads (``load_clip_cache``) with these
    settings is kept; damaged or missing ones are (re)done, unreadable clips retried. A
    cache holds one setting: if the manifest records other ``frames``/``size``,
    ``CacheSettingsError`` says so (use another ``out``); a file whose crops are not
    ``size`` wide or that has more than ``frames`` rows is redone.

    Bad clips do not stop the run: status "unreadable" (with the error), "no_face" when
    no frame had a face (its file is still written), else "prepared". The manifest
    (see module docstring) is written atomically at the start, every
    ``MANIFEST_EVERY_S`` seconds and at the end (``complete`` true).

    ``workers``: processes (None: CPU count). 1 runs in this process with OpenCV's own
    threads; more use a process pool (forkserver or spawn, so it is safe after TensorFlow
    or OpenCV started threads), one OpenCV thread each; a worker that dies on a clip (a
    decoder crash) gets that clip recorded "unreadable" and the run goes on. Memory does
    not grow with the number of clips: at most ``2 * workers`` clips are in flight and
    results stream back one clip at a time (``benchmarks/bench_prepare.py`` measures it).
    Scripts that call it with workers > 1 need the usual ``if __name__ == "__main__":``.
    """
    started = time.perf_counter()
    source, out = Path(source).absolute(), Path(out).absolute()  # the manifest records unambiguous paths
    if int(frames) < 1 or int(size) < 1:
        raise ValueError(f"frames and size must be >= 1, got {frames} and {size}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not source.exists():
        raise FileNotFoundError(f"dataset source {source} not found; pass the folder holding the clips or zips")
    if source.resolve() == out.resolve() or out.resolve() in source.resolve().parents:
        raise ValueError(f"--out {out} must not be the dataset folder {source} or hold it; choose a new folder")
    settings = {"frames": int(frames), "size": int(size)}
    previous = _previous_clips(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    plan = _Plan(source, out, [Path(p) for p in labels] if labels is not None else None, progress)

    from tqdm import tqdm

    bar = tqdm(total=len(plan.clips), desc="prepare", unit="clip", disable=not progress)
    entries: dict[str, dict[str, Any]] = {}
    tasks: list[tuple[str, str, str, int, int]] = []
    redone = 0
    for name in sorted(plan.clips):  # check what an earlier run left: keep good files, redo the rest
        target = clip_cache_path(out, name)
        fields = _cached_fields(target, frames, size) if target.exists() else None
        if fields is None:
            redone += target.exists()
            tasks.append((name, str(plan.clips[name]), str(target), int(frames), int(size)))
            continue
        earlier = previous.get(name)  # the reader's warning is not in the file: keep the earlier run's
        fields["warning"] = earlier.get("warning") if isinstance(earlier, dict) else None
        entries[name] = plan.entry(name, fields)
        bar.update()
    reused = len(entries)
    n_workers = max(1, min(workers, len(tasks)))

    def write(complete: bool) -> dict[str, Any]:
        summary = plan.summary(entries, out, reused=reused, redone=redone, workers=n_workers,
                               seconds=round(time.perf_counter() - started, 3))
        write_json_atomic(out / MANIFEST_NAME, plan.manifest(entries, settings, complete, summary))
        return summary

    write(complete=False)
    last_write = time.monotonic()
    results = _results(tasks, n_workers)
    try:
        for name, fields in results:
            entries[name] = plan.entry(name, fields)
            bar.update()
            if time.monotonic() - last_write >= MANIFEST_EVERY_S:
                write(complete=False)
                last_write = time.monotonic()
    except BaseException:
        results.close()  # ends the pool now, not when the generator is collected
        bar.close()
        write(complete=False)  # keeps what finished; a re-run does the rest
        raise
    bar.close()
    return write(complete=True)
