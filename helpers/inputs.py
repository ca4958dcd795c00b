"""A tf.data pipeline that streams face sequences from the prepared cache.

``make_dataset(cache_dir, "train", length=32, batch_size=8, shuffle=True, seed=0)`` yields
batches of ``(inputs, targets)``:

- ``inputs["faces"]``: float32 ``[batch, length, size, size, 1]``, pixels scaled to [0, 1];
- ``inputs["mask"]``: bool ``[batch, length]``, True where the position holds a frame of
  the clip whose crop is trusted as the followed face (``usable``: detected, or a box
  interpolated across a short miss), False for padding. Frames that are not usable are
  left out and the usable ones packed to the front in order (``to_model_input``), so
  every mask is right-padded with at least one True, as Keras' cuDNN LSTM needs on a GPU;
- ``targets``: float32 ``[batch, 5]``, the trait scores in ``helpers.TRAITS`` order.

The usable frames are made ``length`` long with ``helpers.sequences.fixed_length_indices``;
the default ``padding`` ``"zero_pad"`` keeps the first ``length`` usable frames of a longer
clip and puts zero frames (mask False) at the END of a shorter one; ``"uniform"`` spreads
the kept frames over a longer clip instead.

Only clips of the split with status ``"prepared"`` and labels are used. Which split a clip
is in comes from the manifest (the official splits) or from an ``assignment`` clip name ->
split (``split_assignment``: the official or the by-video scheme; a run folder records its own). One clip's file
is read at a time (a Python generator under ``tf.data.Dataset.from_generator``), so the
whole split never sits in memory. A cache file that fails to load (``CacheFileError``),
holds crops of another size or no usable frame is skipped, never fed to the model: a
warning naming it goes to the ``helpers.inputs`` logger, and the ``ClipSource`` keeps the
names and reasons in ``skipped`` (``train`` records them as ``skipped_files``).
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from helpers import SPLITS, TRAITS
from helpers.cache import CacheFileError, load_clip_cache, read_manifest
from helpers.dataset import is_clip_name
from helpers.labels import assign_splits
from helpers.sequences import Strategy, fixed_length_indices, take_frames

log = logging.getLogger(__name__)

#: Default padding (``sequences.Strategy``): the first ``length`` frames, zero padding at the end.
DEFAULT_PADDING: Strategy = "zero_pad"


@dataclass(frozen=True)
class ClipEntry:
    """One usable clip of a split: its name, cache file and targets (TRAITS order)."""

    name: str
    path: Path
    labels: np.ndarray  # float32 [5]


def _labelled(info: dict[str, Any]) -> bool:
    labels = info.get("labels") or {}
    return all(isinstance(labels.get(t), (int, float)) for t in TRAITS)


def split_assignment(manifest: dict[str, Any], split_scheme: str = "official", split_seed: int = 0,
                     cache_dir: Path | None = None) -> dict[str, str]:
    """clip name -> split under ``split_scheme`` (``helpers.labels.SPLIT_SCHEMES``), from a cache manifest.

    Over every labelled clip with an official split, whatever its prepare status, so the
    assignment of a clip does not change when other clips fail or are prepared later
    (``helpers.labels.assign_splits``; ``split_seed`` is used by ``"by-video"`` only).
    Raises ``ValueError`` naming the clips whose names are not ``<video id>.<number>.<ext>``
    (``helpers.dataset.is_clip_name``; ``cache_dir`` only names the cache in the message):
    before any training, not after it.
    """
    official = {name: info["split"] for name, info in manifest["clips"].items()
                if info.get("split") in SPLITS and _labelled(info)}
    bad = sorted(name for name in official if not is_clip_name(name))
    if bad:
        where = f"the cache {cache_dir}" if cache_dir is not None else "the cache"
        raise ValueError(f"{len(bad)} clip name(s) of {where} are not '<video id>.<number>.<ext>' as in First "
                         f"Impressions (e.g. {bad[0]!r:.80}): the video id is what keeps a person on one side of "
                         "the splits; rename the clips and re-run prepare")
    return assign_splits(official, official, split_scheme, split_seed)


def split_entries(cache_dir: Path, split: str, manifest: dict[str, Any] | None = None,
                  assignment: dict[str, str] | None = None) -> list[ClipEntry]:
    """The clips of ``split`` with status ``"prepared"``, a cache file and all five labels.

    ``assignment`` (clip name -> split, e.g. ``split_assignment``) replaces the manifest's
    official splits; clips it does not name are in no split. Sorted by clip name, so the
    order does not depend on how the manifest was written.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir) if manifest is None else manifest
    entries = []
    for name, info in sorted(manifest["clips"].items()):
        clip_split = info.get("split") if assignment is None else assignment.get(name)
        if clip_split != split or info.get("status") != "prepared" or not info.get("file") or not _labelled(info):
            continue
        labels = info["labels"]
        entries.append(ClipEntry(name, cache_dir / info["file"], np.array([labels[t] for t in TRAITS], np.float32)))
    return entries


class NoUsableFrameError(ValueError):
    """A clip without any usable face frame: it must never reach the model (its mask would be all False)."""


def to_model_input(faces: np.ndarray, usable: np.ndarray, length: int,
                   padding: Strategy = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """One clip's crops (uint8 ``[n, s, s]``) and ``usable`` (bool ``[n]``) -> model input.

    Returns ``(faces, mask)``: float32 ``[length, s, s, 1]`` in [0, 1] and bool ``[length]``.
    Only the usable frames are kept (``helpers.faces.FaceSequence.usable``, not ``found``:
    a face interpolated across a short miss is still the face), **packed** to the front in
    their order; ``padding`` then makes them ``length`` long, with any zero padding at the
    end. So every mask is right-padded (all True, then all False) with at least one True:
    the only masks Keras' cuDNN LSTM kernel accepts on a GPU (a mask False mid-clip stops
    training there). A masked LSTM's output is the same either way: masked steps carry its
    state over unchanged. Raises ``NoUsableFrameError`` for a clip without a usable frame.
    The same preprocessing serves training, evaluation, explanation and prediction.
    """
    faces = np.asarray(faces)
    usable = np.asarray(usable, dtype=bool)
    if faces.ndim != 3 or usable.shape != (len(faces),):
        raise ValueError(f"expected faces [n, s, s] and usable [n], got {faces.shape} and {usable.shape}")
    kept = faces[usable]
    if len(kept) == 0:
        raise NoUsableFrameError(f"none of the clip's {len(faces)} frames has a usable face")
    seq, mask = take_frames(kept, fixed_length_indices(len(kept), length, padding))
    return (seq.astype(np.float32) / np.float32(255.0))[..., None], mask


def right_padded(mask: np.ndarray) -> bool:
    """Whether every row of ``mask`` (bool ``[..., length]``) is all True then all False, with >= 1 True."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 0 or mask.shape[-1] == 0:
        return False
    counts = mask.sum(axis=-1)
    return bool((counts >= 1).all() and (mask == (np.arange(mask.shape[-1]) < counts[..., None])).all())


def _unusable_reason(data: dict[str, np.ndarray], path: Path, size: int) -> str | None:
    """Why a cache file that loaded still cannot feed the model, or None (the one size check)."""
    if len(data["faces"]) == 0:
        return f"cache file {path} holds no frames; re-run prepare"
    if data["faces"].shape[1:] != (size, size):
        return (f"cache file {path} holds {data['faces'].shape[1]}px faces, the model takes {size}px; "
                f"re-run prepare with --size {size}")
    if not data["usable"].any():
        return f"cache file {path} holds no usable face frame (the manifest says prepared); re-run prepare"
    return None


@dataclass
class ClipSource:
    """The clips of one split, read one file at a time; remembers the files it had to skip.

    The one path from the cache to model input (``load``): training streams it through
    ``dataset_from_source`` (calling it returns a fresh generator of ``({"faces", "mask"},
    targets)`` numpy examples); evaluation, explanation and the tests read it in numpy
    batches (``batches``, ``arrays``). With ``shuffle`` the order of a call is a
    permutation drawn from ``seed`` and the number of calls made so far: the same seed
    gives the same sequence of epochs, and each epoch has its own order (``batches`` and
    ``arrays`` keep the entries' order).
    """

    entries: list[ClipEntry]
    length: int
    size: int
    padding: Strategy = DEFAULT_PADDING
    shuffle: bool = False
    seed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # clip name -> reason
    passes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def order(self, pass_index: int) -> list[ClipEntry]:
        """The clip order of pass ``pass_index`` (0 = first epoch)."""
        if not self.shuffle:
            return list(self.entries)
        rng = np.random.default_rng([self.seed, pass_index])
        return [self.entries[i] for i in rng.permutation(len(self.entries))]

    def load(self, entry: ClipEntry) -> tuple[np.ndarray, np.ndarray] | None:
        """``to_model_input`` of one clip, or None (logged once, recorded in ``skipped``) if it cannot be used."""
        if entry.name in self.skipped:
            return None
        try:
            data = load_clip_cache(entry.path)
            reason = _unusable_reason(data, entry.path, self.size)
        except CacheFileError as exc:
            reason = str(exc)
        if reason is not None:
            with self._lock:
                self.skipped[entry.name] = reason
            log.warning("skipping clip %s: %s", entry.name, reason)
            return None
        return to_model_input(data["faces"], data["usable"], self.length, self.padding)

    def __call__(self) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        with self._lock:
            pass_index, self.passes = self.passes, self.passes + 1
        for entry in self.order(pass_index):
            example = self.load(entry)
            if example is not None:
                yield {"faces": example[0], "mask": example[1]}, entry.labels

    def batches(self, batch_size: int = 8) -> Iterator[dict[str, Any]]:
        """The usable clips in the entries' order as numpy batches of up to ``batch_size`` clips:
        ``{"faces" [b, length, s, s, 1], "mask" [b, length], "y" [b, 5], "names"}``."""
        rows: list[tuple[ClipEntry, tuple[np.ndarray, np.ndarray]]] = []
        for entry in self.entries:
            example = self.load(entry)
            if example is not None:
                rows.append((entry, example))
            if len(rows) == batch_size:
                yield _stack(rows)
                rows = []
        if rows:
            yield _stack(rows)

    def arrays(self, limit: int | None = None) -> dict[str, Any]:
        """The first ``limit`` usable clips (all when None) as one batch (see ``batches``), possibly empty.

        Holds them in memory: about 300 KB per clip at 32 frames of 48x48.
        """
        parts, n = [], 0
        for part in self.batches(32):
            parts.append(part)
            n += len(part["names"])
            if limit is not None and n >= limit:
                break
        t, s = self.length, self.size
        empty = {"faces": np.zeros((0, t, s, s, 1), np.float32), "mask": np.zeros((0, t), bool),
                 "y": np.zeros((0, len(TRAITS)), np.float32), "names": []}
        if not parts:
            return empty
        out: dict[str, Any] = {k: np.concatenate([p[k] for p in parts])[:limit] for k in ("faces", "mask", "y")}
        out["names"] = [name for p in parts for name in p["names"]][:limit]
        return out

    @property
    def usable(self) -> list[ClipEntry]:
        """The entries not (yet) known to be unusable."""
        return [e for e in self.entries if e.name not in self.skipped]


def _stack(rows: list[tuple[ClipEntry, tuple[np.ndarray, np.ndarray]]]) -> dict[str, Any]:
    return {"faces": np.stack([x for _, (x, _) in rows]), "mask": np.stack([m for _, (_, m) in rows]),
            "y": np.stack([e.labels for e, _ in rows]), "names": [e.name for e, _ in rows]}


def clip_source(cache_dir: Path, split: str, length: int = 32, *, shuffle: bool = False, seed: int = 0,
                padding: Strategy = DEFAULT_PADDING, size: int | None = None,
                manifest: dict[str, Any] | None = None, assignment: dict[str, str] | None = None) -> ClipSource:
    """A ``ClipSource`` over the usable clips of ``split``; raises if there are none.

    ``size`` defaults to the crop size the cache was prepared with (its manifest's settings);
    ``assignment`` as in ``split_entries``.
    """
    manifest = read_manifest(cache_dir) if manifest is None else manifest
    entries = split_entries(cache_dir, split, manifest, assignment)
    if not entries:
        raise ValueError(f"cache {cache_dir} has no prepared, labelled clips in split {split!r}")
    size = int(manifest["settings"]["size"]) if size is None else size
    return ClipSource(entries, length, size, padding=padding, shuffle=shuffle, seed=seed)


def dataset_from_source(source: ClipSource, batch_size: int = 8, prefetch: int = 2):
    """Batch a ``ClipSource`` as a ``tf.data.Dataset`` (batches of ``batch_size``, the last may be smaller)."""
    import tensorflow as tf

    t, s = source.length, source.size
    signature = (
        {"faces": tf.TensorSpec((t, s, s, 1), tf.float32), "mask": tf.TensorSpec((t,), tf.bool)},
        tf.TensorSpec((len(TRAITS),), tf.float32),
    )
    # Clips are streamed and damaged files skipped as met, so the dataset's length is unknown and
    # Keras warns after a first epoch (in train or a notebook's fit) that the input "ran out of
    # data": expected, so not shown.
    warnings.filterwarnings("ignore", message=".*ran out of data.*")
    ds = tf.data.Dataset.from_generator(source, output_signature=signature)
    return ds.batch(batch_size).prefetch(prefetch)


def make_dataset(cache_dir: Path, split: str, length: int = 32, batch_size: int = 8, *, shuffle: bool = False,
                 seed: int = 0, padding: Strategy = DEFAULT_PADDING, prefetch: int = 2):
    """A batched, prefetching ``tf.data.Dataset`` of ``split``; see the module docstring.

    Returns ``(dataset, source)``: ``source.skipped`` lists damaged files met so far
    (filled as the dataset is iterated).
    """
    source = clip_source(cache_dir, split, length, shuffle=shuffle, seed=seed, padding=padding)
    return dataset_from_source(source, batch_size, prefetch), source
