"""The prepared cache's format: one small file per clip plus a manifest (``helpers.prepare`` writes them).

Layout of a cache folder::

    CACHE/
      manifest.json          # settings, one entry per clip, summary (see ``read_manifest``)
      .prepare.lock          # held (an OS lock) by the prepare run writing the folder; holds its pid
      clips/<clip stem>.npz  # faces uint8 [n, s, s], found bool [n], usable bool [n],
                             # boxes float32 [n, 4], frame_indices int64 [n], fps float64 scalar

``found`` and ``usable`` are those of ``helpers.faces.FaceSequence``: the detector fired on the
followed face in that frame / the crop is trusted as that face (found, or a box interpolated
within the limits of ``helpers.faces.interpolate_boxes``). Models are trained on ``usable``.

A clip entry in ``manifest["clips"][clip_name]`` (``clip_name`` is the file name, e.g.
``J4GQm9j0JZ0.003.mp4``) holds: ``split`` ("train", "validation", "test" or None),
``status`` ("prepared", "no_face", "unreadable", or "skipped": a name outside
``helpers.dataset.is_clip_name``, or a second clip taking the same cache file), ``file`` (path of the .npz relative to
the cache, or None), ``labels`` (trait -> float, or None), ``n_frames``, ``n_found``,
``n_usable``, ``fps``, ``error`` and ``warning`` (text or None), and ``video`` (the source
clip's path). ``n_frames`` is how many frames the file holds (at most
``settings["num_frames"]``); a clip is "prepared" when ``n_usable`` > 0, else "no_face".

Top level of the manifest (written by ``helpers.prepare.prepare``)::

    {"version": 3, "complete": true,            # false while a run is under way or was killed
     "settings": {"num_frames": 32, "size": 48,
                  "detector": {"name": "haar-frontalface-default", "settings": {...}}},
     "source": "...", "label_files": {"<path>": "train", ...},
     "dataset": "demo",                         # the source's helpers.dataset.dataset_kind: "first_impressions"
                                                #   unless its dataset.json says otherwise
     "archives": {"extracted": [...], "skipped": [{"archive": ..., "reason": ...}]},
     "labels_without_clip": [...], "clips_without_label": [...],
     "split_conflicts": [{"clip": ..., "folder": "train", "annotation": "test"}, ...],
     "summary": {...},                          # what ``prepare`` returns
     "clips": {"J4GQm9j0JZ0.003.mp4": {...}, ...}}

Every file is written atomically (a temporary name in the same folder, then a rename),
so an interrupted run never leaves a half-written file under its final name; a write that
fails (a full disk) raises ``CacheWriteError`` naming the file.
"""

from __future__ import annotations

import errno
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from helpers.atomic import write_atomic, write_json_atomic

MANIFEST_NAME = "manifest.json"
CLIPS_DIR = "clips"
#: 2: settings ``frames`` became ``num_frames``. 3: clip files hold ``usable``, entries
#: ``n_usable``, settings the ``detector``. 4: boxes smoothed over each track
#: (``helpers.faces.smooth_boxes``), so the crops differ. Other versions are refused (``read_manifest``).
MANIFEST_VERSION = 4
#: Clip statuses, in the order summaries list them.
STATUSES: tuple[str, ...] = ("prepared", "no_face", "unreadable", "skipped")
#: Largest array a cache file may declare (bytes): far above any real clip (32 x 48 x 48 faces: 74 KB), far
#: below what a crafted header could make ``numpy`` allocate before reading a byte.
MAX_ARRAY_BYTES = 1 << 30

#: Arrays every cache file holds, with their dtype kind and number of dimensions.
CACHE_ARRAYS: dict[str, tuple[str, int]] = {
    "faces": ("u", 3),
    "found": ("b", 1),
    "usable": ("b", 1),
    "boxes": ("f", 2),
    "frame_indices": ("i", 1),
    "fps": ("f", 0),
}


class CacheFileError(ValueError):
    """A cache file is missing, unreadable or malformed; the message names it."""


class CacheWriteError(OSError):
    """A cache file or the manifest could not be written (a full disk, a read-only folder); the message names it."""


class CacheVersionError(CacheFileError):
    """The cache was written by an older version of helpers; the message says to re-run prepare."""


def clip_cache_path(cache_dir: Path, clip_name: str) -> Path:
    """Where the cache file of ``clip_name`` (e.g. ``abc.003.mp4``) lives."""
    return Path(cache_dir) / CLIPS_DIR / (Path(clip_name).stem + ".npz")


def save_clip_cache(path: Path, faces: np.ndarray, found: np.ndarray, usable: np.ndarray, boxes: np.ndarray,
                    frame_indices: np.ndarray, fps: float) -> None:
    """Write one clip's face sequence (the fields of ``helpers.faces.FaceSequence``) to ``path`` (.npz), atomically."""
    arrays = {
        "faces": np.asarray(faces, dtype=np.uint8),
        "found": np.asarray(found, dtype=bool),
        "usable": np.asarray(usable, dtype=bool),
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "frame_indices": np.asarray(frame_indices, dtype=np.int64),
        "fps": np.float64(fps),
    }
    _written(Path(path), lambda: write_atomic(Path(path), lambda f: np.savez(f, **arrays)))


def _written(path: Path, write) -> None:
    """Run ``write()``; an ``OSError`` becomes a ``CacheWriteError`` naming ``path`` and what to do."""
    try:
        write()
    except OSError as exc:
        what = ("the disk is full: free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else "check that the folder is writable and has room")
        raise CacheWriteError(f"cannot write {path} ({exc.strerror or exc}): {what}, then re-run prepare "
                              "(the clips already in the cache are kept)") from exc


#: Reader of each .npy header version that ``np.savez`` writes for plain arrays.
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_header(path: Path, name: str, shape: tuple, dtype: np.dtype, held: int, num_frames: int | None,
                  size: int | None) -> None:
    """Refuse an array whose header is not what the cache holds, before anything is allocated for it."""
    kind, ndim = CACHE_ARRAYS[name]
    if dtype.kind != kind or len(shape) != ndim:
        raise CacheFileError(f"cache file {path}: '{name}' has dtype {dtype} and {len(shape)} dims, "
                             f"expected kind {kind!r} and {ndim} dims; re-run prepare")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != held or claimed > MAX_ARRAY_BYTES:
        raise CacheFileError(f"cache file {path}: the header of '{name}' claims shape {shape} ({claimed} bytes) "
                             f"but the file holds {held} bytes for it (at most {MAX_ARRAY_BYTES} allowed); "
                             "delete it and re-run prepare")
    if num_frames is not None and ndim and shape[0] > num_frames:
        raise CacheFileError(f"cache file {path}: '{name}' holds {shape[0]} frames, the cache's settings at most "
                             f"{num_frames}; re-run prepare")
    if size is not None and name == "faces" and tuple(shape[1:]) != (size, size):
        raise CacheFileError(f"cache file {path} holds faces of {shape[1:]} pixels, the cache's settings "
                             f"{size}x{size}; re-run prepare")


def _read_member(archive: zipfile.ZipFile, path: Path, name: str, num_frames: int | None,
                 size: int | None) -> np.ndarray:
    """One array of a cache file, its header checked first (``_check_header``)."""
    info = archive.getinfo(name + ".npy")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in _HEADER_READERS:
            raise CacheFileError(f"cache file {path}: '{name}' has .npy format {version}; re-run prepare")
        shape, _, dtype = _HEADER_READERS[version](f)
        _check_header(path, name, shape, dtype, info.file_size - f.tell(), num_frames, size)
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)


def load_clip_cache(path: Path, num_frames: int | None = None, size: int | None = None) -> dict[str, np.ndarray]:
    """Read and check one cache file; raises ``CacheFileError`` naming it if it is damaged.

    Each array's .npy header is checked before the array is read: its dtype and dims, that it
    claims no more bytes than the file holds (nor ``MAX_ARRAY_BYTES``), and, when given, the
    cache's settings (at most ``num_frames`` rows, faces ``size`` wide). So a crafted header
    never makes numpy allocate what it claims.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            held = {n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")}
            missing = sorted(set(CACHE_ARRAYS) - held)
            if missing:
                raise CacheFileError(f"cache file {path} lacks {missing}; delete it and re-run prepare")
            arrays = {name: _read_member(archive, path, name, num_frames, size) for name in CACHE_ARRAYS}
    except CacheFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error, MemoryError) as exc:
        raise CacheFileError(f"cache file {path} cannot be read ({type(exc).__name__}: {exc}); delete it and "
                             "re-run prepare") from exc
    faces = arrays["faces"]
    lengths = {len(arrays[name]) for name in ("faces", "found", "usable", "boxes", "frame_indices")}
    if len(lengths) != 1 or arrays["boxes"].shape[1:] != (4,) or faces.shape[1] != faces.shape[2]:
        raise CacheFileError(f"cache file {path} has inconsistent array shapes; re-run prepare")
    if (arrays["found"] & ~arrays["usable"]).any():
        raise CacheFileError(f"cache file {path} marks frames found but not usable; re-run prepare")
    return arrays


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
    if manifest.get("version") != MANIFEST_VERSION:
        raise CacheVersionError(
            f"{cache_dir} was prepared by an older version of helpers (manifest version "
            f"{manifest.get('version')}, this one reads {MANIFEST_VERSION}): re-run "
            f"`python -m helpers prepare SOURCE --out {cache_dir}` (clip files still valid are kept, "
            "the others redone)")
    return manifest


def write_manifest(cache_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``CACHE/manifest.json`` atomically; ``CacheWriteError`` names it if that fails."""
    path = Path(cache_dir) / MANIFEST_NAME
    _written(path, lambda: write_json_atomic(path, manifest))
