"""The prepare run: every clip of a dataset to a cached face sequence, with a manifest.

``prepare(source, cache_dir)`` (or ``python -m helpers prepare SOURCE --out CACHE``)
assembles the dataset (``helpers.dataset.assemble``: clips, splits, labels, zips
unpacked into ``CACHE/extracted/``), turns each clip into its face sequence
(``helpers.faces.video_to_faces``) in a pool of worker processes, and writes one cache
file per clip and the manifest (``helpers.cache`` describes both). The manifest records the
face detector (``helpers.faces.detector_record``): one cache holds one detector's faces, and
the dataset's kind (``helpers.dataset.dataset_kind``). One run at a time writes a cache
folder: a second one on the same folder is refused at once (``CacheBusyError``).
"""

from __future__ import annotations

import errno
import os
import time
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from helpers.cache import (CLIPS_DIR, MANIFEST_NAME, MANIFEST_VERSION, STATUSES, CacheFileError, clip_cache_path,
                           load_clip_cache, read_manifest, save_clip_cache, write_manifest)
from helpers import SPLITS
from helpers.dataset import CLIP_NAME_PATTERN, VIDEO_SUFFIXES, Assembly, assemble, dataset_kind, is_clip_name

#: Folder of the cache where the distributed zips are unpacked.
EXTRACTED_DIR = "extracted"
#: Seconds between manifest writes during a run. A killed run loses no finished clip (each
#: has its own file); the next run rebuilds the manifest lines from those files.
MANIFEST_EVERY_S = 10.0
#: How many fresh pools in a row may fail before taking a clip (a system that cannot start
#: processes at all) before prepare gives up with the error; seconds waited after the n-th
#: failure: n * POOL_RETRY_S (CPython restarts a forkserver that died, once it has exited).
MAX_POOL_STARTS = 3
POOL_RETRY_S = 1.0
#: File of the cache folder that the running prepare holds an OS lock on (``fcntl.flock``): the
#: lock ends with the process, however it ends, so a killed run never blocks the next one.
LOCK_NAME = ".prepare.lock"


class CacheSettingsError(ValueError):
    """The cache folder was prepared with other settings (num_frames, size, detector)."""


class CacheBusyError(OSError):
    """Another prepare run is writing the cache folder; the message names the folder and its process."""


@contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """Hold the lock of ``cache_dir`` (``LOCK_NAME``) for the block, or raise ``CacheBusyError`` at once."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one run per folder is then up to the user
        yield
        return
    fd = os.open(Path(cache_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)  # mode: the umask decides
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise CacheBusyError(f"{cache_dir} is being prepared by another run (process {holder}); wait for it "
                                 "to finish, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


class PrepareTask(NamedTuple):
    """One clip to prepare: its name, the video file, the cache file to write, and the settings."""

    name: str
    video: str
    target: str
    num_frames: int
    size: int
    detector: Any = None  # a ``helpers.faces.Detector`` (picklable); None: the default


def _video_to_faces(path: str, num_frames: int, size: int, detector=None):
    """``helpers.faces.video_to_faces``, imported in the worker on first use (tests replace this function)."""
    from helpers.faces import video_to_faces

    return video_to_faces(path, num_frames=num_frames, size=size, detector=detector)


def _face_counts(found: np.ndarray, usable: np.ndarray) -> dict[str, Any]:
    """Status and frame counts of a clip's ``found`` and ``usable`` flags."""
    n_usable = int(np.count_nonzero(usable))
    return {"status": "prepared" if n_usable else "no_face", "n_frames": len(usable),
            "n_found": int(np.count_nonzero(found)), "n_usable": n_usable}


def prepare_clip(video: str, target: str, num_frames: int, size: int, detector=None) -> dict[str, Any]:
    """Turn one clip into its cache file; returns its manifest fields (small: no arrays).

    A clip that cannot be read is not an error here: it comes back with status
    "unreadable" and the error text, so a long run goes on past it. Warnings of the
    reader (say, a truncated clip) come back as ``warning``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            seq = _video_to_faces(video, num_frames, size, detector)
            error = None
        except Exception as exc:  # any failure of one clip; the run must go on to the next
            seq, error = None, f"{type(exc).__name__}: {exc}"
    warning = "; ".join(dict.fromkeys(str(w.message) for w in caught)) or None
    if seq is None:
        return _unreadable_fields(error, warning)
    save_clip_cache(Path(target), seq.faces, seq.found, seq.usable, seq.boxes, seq.frame_indices, seq.fps)
    return {**_face_counts(seq.found, seq.usable), "fps": float(seq.fps), "error": None, "warning": warning}


def _unreadable_fields(error: str, warning: str | None = None, status: str = "unreadable") -> dict[str, Any]:
    return {"status": status, "n_frames": 0, "n_found": 0, "n_usable": 0, "fps": None, "error": error,
            "warning": warning}


def run_task(task: PrepareTask) -> tuple[str, dict[str, Any]]:
    """``prepare_clip`` of one task: (clip name, manifest fields). What a pool worker runs."""
    return task.name, prepare_clip(task.video, task.target, task.num_frames, task.size, task.detector)


def _init_worker() -> None:
    """Pool initializer: one OpenCV thread per worker process (the processes are the parallelism)."""
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which ends the pool
    cv2.setNumThreads(1)


def _pool_context():
    """forkserver where there is one (safe after TensorFlow started threads, and fast), else spawn."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # Workers fork from a server that has imported these once; replaces the default
        # ['__main__'], so a script or notebook is never re-run in the server.
        ctx.set_forkserver_preload(["helpers.prepare", "helpers.faces"])
        return ctx
    return mp.get_context("spawn")


def _new_pool(workers: int) -> ProcessPoolExecutor:
    """A fresh process pool of ``workers`` (tests replace this to inject faults)."""
    return ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=_init_worker)


#: What a breaking pool raises from ``submit`` (or a failed start): BrokenProcessPool, an
#: OSError such as EBADF on a pipe the dying pool closed, or RuntimeError after its shutdown.
_POOL_BROKEN = (BrokenProcessPool, OSError, RuntimeError)


class _PoolBroke(Exception):
    """The pool could not be started or stopped taking clips."""


def _crash_message(task: PrepareTask) -> str:
    return (f"the worker process died while reading {task.video} (a crash in the video decoder, "
            "or out of memory); check the clip plays")


class _Pool:
    """One process pool and the clips in flight in it; ``broken`` once it stops taking them."""

    def __init__(self, workers: int, run) -> None:
        try:
            self.executor = _new_pool(workers)
        except _POOL_BROKEN as exc:
            raise _PoolBroke(f"{type(exc).__name__}: {exc}") from exc
        self.run = run
        self.inflight: dict[Future, PrepareTask] = {}
        self.solo: PrepareTask | None = None  # the suspect running alone, if any
        self.took_one = self.broken = False

    def submit(self, queue: deque[PrepareTask]) -> PrepareTask:
        """Start the first clip of ``queue``; one whose submit fails never ran and goes back to it."""
        task = queue.popleft()
        try:
            self.inflight[self.executor.submit(self.run, task)] = task
        except _POOL_BROKEN as exc:
            queue.appendleft(task)  # it never ran: not a suspect
            raise _PoolBroke(f"{type(exc).__name__}: {exc}") from exc
        return task

    def collect(self, future: Future, suspects: deque[PrepareTask]) -> tuple[str, dict[str, Any]] | None:
        """The result of a finished clip; None when the pool broke under it (it joins ``suspects``).

        The suspect that ran alone when the pool broke is the one that killed it: "unreadable".
        """
        task = self.inflight.pop(future)
        try:
            result = future.result()
        except BrokenProcessPool:
            self.broken = True
            if task is not self.solo:
                suspects.append(task)
                return None
            result = (task.name, _unreadable_fields(_crash_message(task)))
        if task is self.solo:
            self.solo = None
        return result


def _drain(pool: _Pool, pending: deque[PrepareTask], suspects: deque[PrepareTask],
           workers: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield results from ``pool`` until it breaks or every clip is done: suspects one at a time, first."""
    while (pending or suspects or pool.inflight) and not pool.broken:
        if suspects:
            if not pool.inflight:
                pool.solo = pool.submit(suspects)
        else:
            while pending and len(pool.inflight) < 2 * workers:
                pool.submit(pending)
        pool.took_one = True
        done, _ = wait(pool.inflight, return_when=FIRST_COMPLETED)
        for future in done:
            result = pool.collect(future, suspects)
            if result is not None:
                yield result


def _failed_start(exc: _PoolBroke, failed_starts: int, took_one: bool, workers: int) -> int:
    """Pools in a row that failed before taking a clip; gives up with the error after ``MAX_POOL_STARTS``."""
    failed_starts = 0 if took_one else failed_starts + 1
    if failed_starts >= MAX_POOL_STARTS:
        raise RuntimeError(f"could not run a process pool of {workers} workers ({exc}); try --workers 1") from exc
    time.sleep(failed_starts * POOL_RETRY_S)
    return failed_starts


def _pool_results(tasks: list[PrepareTask], workers: int, run=None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (clip name, fields) from a process pool as clips finish, surviving a pool that breaks.

    At most ``2 * workers`` clips are in flight, so memory does not grow with the number of
    clips. A worker that dies (a decoder crash on a damaged clip, the OOM killer) breaks
    the pool, wherever that shows: in a result or in ``submit``. The clips that were in
    flight are then retried one at a time in a new pool, so the clip that kills a worker
    on its own is recorded "unreadable" and every other clip is prepared; a clip whose
    submit failed never ran and goes back to its queue. ``run`` is the function the
    workers run (default ``run_task``; tests pass one that crashes on chosen clips).
    """
    run = run_task if run is None else run
    pending: deque[PrepareTask] = deque(tasks)
    suspects: deque[PrepareTask] = deque()  # in flight when a pool broke: retried one at a time
    failed_starts = 0
    while pending or suspects:
        pool: _Pool | None = None
        try:
            try:
                pool = _Pool(workers, run)
                yield from _drain(pool, pending, suspects, workers)
            except _PoolBroke as exc:
                if pool is not None:
                    pool.broken = True
                failed_starts = _failed_start(exc, failed_starts, pool is not None and pool.took_one, workers)
            if pool is not None:
                suspects.extend(pool.inflight.values())  # in flight when the pool broke
        finally:
            if pool is not None:
                _close_pool(pool.executor, pool.broken)


def _close_pool(executor: ProcessPoolExecutor, broken: bool) -> None:
    """Shut a pool down; one that CPython marked broken after killing its workers.

    CPython's pool, when a worker dies, terminates the workers it knows and waits for
    them; a worker that a ``submit`` started while the pool was breaking is never told
    to stop, and ``shutdown`` then waits for it forever (seen with forkserver under load).
    Killing every worker of such a pool first ends that wait; their clips are retried.
    A pool that is not broken (a submit failed, say) is shut down normally.
    """
    if broken and getattr(executor, "_broken", False):
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            if process.is_alive():
                process.kill()
    try:
        executor.shutdown(wait=True, cancel_futures=True)
    except _POOL_BROKEN:
        pass  # a broken pool may fail to close its pipes; its processes are gone


def _results(tasks: list[PrepareTask], workers: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (clip name, fields) as clips finish: in this process, or from a pool of ``workers``."""
    if workers <= 1:
        for task in tasks:
            yield run_task(task)
        return
    yield from _pool_results(tasks, workers)


def _cached_fields(path: Path, num_frames: int, size: int) -> dict[str, Any] | None:
    """Manifest fields of a finished cache file, or None if it is damaged or of other settings."""
    try:
        arrays = load_clip_cache(path, num_frames=num_frames, size=size)  # refuses other settings' files
    except CacheFileError:
        return None
    return {**_face_counts(arrays["found"], arrays["usable"]), "fps": float(arrays["fps"]), "error": None,
            "warning": None}


def _previous_clips(cache_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Clip entries of an earlier run's manifest; raises ``CacheSettingsError`` if its settings differ.

    A manifest of an older version is not refused here: its clip files lack what this
    version stores (they fail ``load_clip_cache``), so they are all redone.
    """
    try:
        manifest = read_manifest(cache_dir)
    except (FileNotFoundError, CacheFileError):
        return {}  # none, damaged or of an older version: rebuilt from the clip files
    old = manifest.get("settings")
    if isinstance(old, dict):
        differ = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if differ:
            said = "; ".join(f"{k}: {was!r} there, {now!r} now" for k, (was, now) in differ.items())
            raise CacheSettingsError(
                f"{cache_dir} was prepared with other settings ({said}). A cache holds one setting (frames, size, "
                f"face detector): choose another --out, or delete {cache_dir / MANIFEST_NAME} and "
                f"{cache_dir / CLIPS_DIR} to prepare it again")
    return manifest["clips"]


def _remove_partial_files(cache_dir: Path) -> None:
    """Delete the temporary files of cache writes that never finished (a killed run or worker)."""
    for path in (Path(cache_dir) / CLIPS_DIR).glob(".*.tmp"):
        path.unlink(missing_ok=True)


def clip_entry(assembly: Assembly, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry of one clip (see ``helpers.cache``)."""
    clip = assembly.clips[name]
    has_file = fields["status"] in ("prepared", "no_face")
    return {
        "split": clip.split,
        "status": fields["status"],
        "file": clip_cache_path(Path(), name).as_posix() if has_file else None,
        "labels": clip.labels,
        "n_frames": fields["n_frames"],
        "n_found": fields["n_found"],
        "n_usable": fields["n_usable"],
        "fps": fields["fps"],
        "error": fields["error"],
        "warning": fields["warning"],
        "video": str(clip.path),
    }


def frame_counts(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sampled frames of the clips with a file, how many were ``found`` and ``usable``, and those shares."""
    frames = sum(e["n_frames"] for e in entries.values())
    found = sum(e["n_found"] for e in entries.values())
    usable = sum(e["n_usable"] for e in entries.values())
    return {"n_frames": frames, "n_found": found, "n_usable": usable,
            "found_rate": round(found / frames, 4) if frames else None,
            "usable_rate": round(usable / frames, 4) if frames else None}


def summarize(assembly: Assembly, entries: dict[str, dict[str, Any]], cache_dir: Path,
              **extra: Any) -> dict[str, Any]:
    """Counts overall and per split (clips of no split under "unassigned"), and ``frame_counts`` overall."""
    def zero() -> dict[str, int]:
        return {"clips": 0, **{s: 0 for s in STATUSES}, "labels_without_clip": 0, "clips_without_label": 0}

    splits = {s: zero() for s in (*SPLITS, "unassigned")}
    for entry in entries.values():
        row = splits[entry["split"] or "unassigned"]
        row["clips"] += 1
        row[entry["status"]] += 1
    for name in assembly.match.clips_without_label:
        splits[assembly.clips[name].split or "unassigned"]["clips_without_label"] += 1
    for name in assembly.match.labels_without_clip:
        splits[assembly.labels.split.get(name) or "unassigned"]["labels_without_clip"] += 1
    if not any(splits["unassigned"].values()):
        del splits["unassigned"]
    return {
        "cache": str(cache_dir),
        "clips": len(assembly.clips),
        "done": len(entries),
        **{s: sum(r[s] for r in splits.values()) for s in STATUSES},
        "labels_without_clip": len(assembly.match.labels_without_clip),
        "clips_without_label": len(assembly.match.clips_without_label),
        "split_conflicts": len(assembly.split_conflicts),
        **frame_counts(entries),
        **extra,
        "splits": splits,
    }


def build_manifest(assembly: Assembly, source: Path, entries: dict[str, dict[str, Any]], settings: dict[str, Any],
                   complete: bool, summary: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a run (see ``helpers.cache``)."""
    return {
        "version": MANIFEST_VERSION,
        "complete": complete,
        "settings": settings,
        "source": str(source),
        "dataset": dataset_kind(source),
        "label_files": assembly.labels.files,
        "archives": {"extracted": [str(p) for p in assembly.extraction.folders],
                     "skipped": assembly.extraction.skipped},
        "labels_without_clip": assembly.match.labels_without_clip,
        "clips_without_label": assembly.match.clips_without_label,
        "split_conflicts": assembly.split_conflicts,
        "summary": summary,
        "clips": {name: entries[name] for name in sorted(entries)},
    }


def prepare(source: Path, cache_dir: Path, num_frames: int = 32, size: int = 48, workers: int | None = None,
            labels: list[Path] | None = None, progress: bool = True, detector=None) -> dict[str, Any]:
    """Turn every clip under ``source`` into a cached face sequence in ``cache_dir``; returns a summary.

    ``source``: a folder with the clips (extracted, any nesting) and/or the distributed
    zips (unpacked into ``cache_dir/extracted/``), or one zip. Labels come from the
    annotation pickles found there (``*annotation*.pkl``) unless ``labels`` lists the
    files (``helpers.dataset.assemble``). ``num_frames``: frames sampled per clip;
    ``size``: face crop side in pixels; ``detector``: a name of ``helpers.faces.DETECTORS``
    or a ``helpers.faces.Detector`` (default ``DEFAULT_DETECTOR``; it must pickle, to reach the workers).

    Resumable: a clip whose cache file exists and loads (``load_clip_cache``) with these
    settings is kept; damaged or missing ones are (re)done, unreadable clips retried. A
    cache holds one setting: if the manifest records other ``num_frames``/``size`` or
    another detector (name or settings), ``CacheSettingsError`` says so (use another
    ``cache_dir``); a file whose crops are not ``size`` wide or that has more than
    ``num_frames`` rows is redone. A cache of an older version is brought up to date: its
    files lack ``usable``, so every clip is redone.

    Bad clips do not stop the run: status "unreadable" (with the error), "no_face" when
    no frame has a usable face (its file is still written), else "prepared"; "skipped" (with
    the reason) when its name is not ``<video id>.<NNN>.<ext>`` (``helpers.dataset.is_clip_name``,
    the rule train needs) or another clip takes the same cache file (``x.001.mp4`` beside
    ``x.001.MP4``: the labelled one, else the lower-case one, is prepared). The manifest
    (see ``helpers.cache``) is written atomically at the start, every
    ``MANIFEST_EVERY_S`` seconds and at the end (``complete`` true).

    ``workers``: processes (None: CPU count). 1 runs in this process with OpenCV's own
    threads; more use a process pool (forkserver or spawn, so it is safe after TensorFlow
    or OpenCV started threads), one OpenCV thread each. A worker that dies (a decoder
    crash, the OOM killer) breaks the pool; the clips in flight are retried one by one in
    a new pool, the one that kills a worker alone is recorded "unreadable", and the run
    goes on. Memory does not grow with the number of clips: at most ``2 * workers`` clips
    are in flight and results stream back one clip at a time
    (``benchmarks/bench_prepare.py`` measures it). Scripts that call it with workers > 1
    need the usual ``if __name__ == "__main__":``.

    One run at a time per ``cache_dir``: a second one raises ``CacheBusyError`` before touching
    anything (``cache_lock``). A write that fails (a full disk) raises ``CacheWriteError``
    naming the file; the clips already written are kept.
    """
    started = time.perf_counter()
    # The manifest records unambiguous paths.
    source, cache_dir = Path(source).absolute(), Path(cache_dir).absolute()
    workers = _checked_options(source, cache_dir, num_frames, size, workers)
    from helpers.faces import build_detector, detector_record

    detector = build_detector(detector)  # a name of helpers.faces.DETECTORS, a Detector, or None: the default
    settings = {"num_frames": int(num_frames), "size": int(size), "detector": detector_record(detector)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    with cache_lock(cache_dir):
        previous = _previous_clips(cache_dir, settings)
        assembly = _assembled(source, cache_dir, labels, progress)
        plan = _plan_clips(assembly, cache_dir, previous, settings, detector)
        run = _Run(assembly, source, cache_dir, settings, plan, max(1, min(workers, len(plan.tasks))), started)
        return run.prepare(progress)


def _checked_options(source: Path, cache_dir: Path, num_frames: int, size: int, workers: int | None) -> int:
    """The number of workers, once the options and folders are checked (before any work starts)."""
    if int(num_frames) < 1 or int(size) < 1:
        raise ValueError(f"num_frames and size must be >= 1, got {num_frames} and {size}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not source.exists():
        raise FileNotFoundError(f"dataset source {source} not found; pass the folder holding the clips or zips")
    if source.resolve() == cache_dir.resolve() or cache_dir.resolve() in source.resolve().parents:
        raise ValueError(f"--out {cache_dir} must not be the dataset folder {source} or hold it; choose a new folder")
    return workers


def _assembled(source: Path, cache_dir: Path, labels: list[Path] | None, progress: bool) -> Assembly:
    """``helpers.dataset.assemble`` of ``source`` (zips unpacked into the cache); an error when it has no clip."""
    assembly = assemble(source, [Path(p) for p in labels] if labels is not None else None,
                        extract_to=cache_dir / EXTRACTED_DIR, exclude=[cache_dir], progress=progress)
    if not assembly.clips:
        skipped = "".join(f"; skipped {d['archive']}: {d['reason']}" for d in assembly.extraction.skipped)
        raise ValueError(
            f"{source}: no clip found{skipped}. Searched every subfolder for files ending in {', '.join(VIDEO_SUFFIXES)} "
            "and for .zip archives holding them (First Impressions V2: train-1.zip ... or the extracted "
            "training80_XX / validation80_XX / test80_XX folders); point prepare at the folder that holds them")
    return assembly


def skipped_clips(assembly: Assembly, cache_dir: Path) -> dict[str, str]:
    """Clip name -> why it is skipped: a name outside ``is_clip_name``, or a cache file another clip takes.

    Of clips sharing a cache file (``x.001.mp4``, ``x.001.MP4``), a labelled one is kept, else one
    with a lower-case suffix (the dataset's own spelling), else the first name; each other one is
    skipped with a reason naming both files.
    """
    skipped = {name: f"{clip.path}: the name is not {CLIP_NAME_PATTERN}, so its video (person) is unknown and "
                     "train could not use it; rename it and re-run prepare"
               for name, clip in assembly.clips.items() if not is_clip_name(name)}
    kept: dict[Path, str] = {}
    def preference(name: str) -> tuple:
        suffix = Path(name).suffix
        return assembly.clips[name].labels is None, suffix != suffix.lower(), name

    for name in sorted(set(assembly.clips) - set(skipped), key=preference):
        first = kept.setdefault(clip_cache_path(cache_dir, name), name)
        if first != name:
            skipped[name] = (f"{assembly.clips[name].path} and {assembly.clips[first].path} would share the cache "
                             f"file {clip_cache_path(cache_dir, name)}; {first} is prepared, this one skipped: rename one "
                             "(clip names must differ before the suffix)")
    return skipped


class _Plan(NamedTuple):
    """What a run starts from: entries already settled (kept or skipped), clips to do, files kept / redone."""

    entries: dict[str, dict[str, Any]]
    tasks: list[PrepareTask]
    reused: int
    redone: int


def _plan_clips(assembly: Assembly, cache_dir: Path, previous: dict[str, Any], settings: dict[str, Any],
                detector) -> _Plan:
    """Check what an earlier run left: keep good files (and their warnings), skip bad names, redo the rest."""
    num_frames, size = settings["num_frames"], settings["size"]
    entries = {name: clip_entry(assembly, name, _unreadable_fields(why, status="skipped"))
               for name, why in skipped_clips(assembly, cache_dir).items()}
    tasks: list[PrepareTask] = []
    reused = redone = 0
    for name, clip in assembly.clips.items():
        if name in entries:
            continue
        target = clip_cache_path(cache_dir, name)
        fields = _cached_fields(target, num_frames, size) if target.exists() else None
        if fields is None:
            redone += target.exists()
            tasks.append(PrepareTask(name, str(clip.path), str(target), num_frames, size, detector))
            continue
        earlier = previous.get(name)  # the reader's warning is not in the file: keep the earlier run's
        fields["warning"] = earlier.get("warning") if isinstance(earlier, dict) else None
        entries[name] = clip_entry(assembly, name, fields)
        reused += 1
    return _Plan(entries, tasks, reused, redone)


class _Run:
    """One prepare run's clips and manifest, from its plan to the last manifest write."""

    def __init__(self, assembly: Assembly, source: Path, cache_dir: Path, settings: dict[str, Any], plan: _Plan,
                 workers: int, started: float) -> None:
        self.assembly, self.source, self.cache_dir, self.settings = assembly, source, cache_dir, settings
        self.plan, self.workers, self.started = plan, workers, started
        self.entries = dict(plan.entries)

    def write(self, complete: bool) -> dict[str, Any]:
        """Write the manifest as it stands; returns its summary."""
        summary = summarize(self.assembly, self.entries, self.cache_dir, reused=self.plan.reused,
                            redone=self.plan.redone, workers=self.workers,
                            seconds=round(time.perf_counter() - self.started, 3))
        write_manifest(self.cache_dir, build_manifest(self.assembly, self.source, self.entries, self.settings,
                                                      complete, summary))
        return summary

    def prepare(self, progress: bool) -> dict[str, Any]:
        """Do the planned clips, writing the manifest at the start, every ``MANIFEST_EVERY_S`` and at the end."""
        from tqdm.auto import tqdm

        bar = tqdm(total=len(self.assembly.clips), desc="prepare", unit="clip", disable=not progress)
        try:  # the bar ends before any error is printed
            bar.update(len(self.entries))
            _remove_partial_files(self.cache_dir)
            self.write(complete=False)
            self._collect(bar)
        finally:
            bar.close()
        _remove_partial_files(self.cache_dir)
        return self.write(complete=True)

    def _collect(self, bar) -> None:
        """Take the clips' results as they finish; an interruption keeps what finished in the manifest."""
        last_write = time.monotonic()
        results = _results(self.plan.tasks, self.workers)
        try:
            for name, fields in results:
                self.entries[name] = clip_entry(self.assembly, name, fields)
                bar.update()
                if time.monotonic() - last_write >= MANIFEST_EVERY_S:
                    self.write(complete=False)
                    last_write = time.monotonic()
        except BaseException:
            results.close()  # ends the pool now, not when the generator is collected
            self._keep_what_finished()
            raise

    def _keep_what_finished(self) -> None:
        """Write the manifest of an interrupted run (a re-run does the rest); a failing write adds nothing."""
        try:
            self.write(complete=False)
        except OSError:
            pass  # a full disk, say: the error being raised already says so, and the last manifest stays whole
