"""A tf.data pipeline that streams face sequences from the prepared cache.

``make_dataset(cache_dir, "train", length=32, batch_size=8, shuffle=True, seed=0)`` yields
batches of ``(inputs, targets)``:

- ``inputs["faces"]``: float32 ``[batch, length, size, size, 1]``, pixels scaled to [0, 1];
- ``inputs["mask"]``: bool ``[batch, length]``, True where the position holds a frame of
  the clip whose crop is trusted as the followed face (``usable``: detected, or a box
  interpolated across a short miss); False for padding and for frames whose crop was
  only borrowed from a neighbouring frame to keep shapes;
- ``targets``: float32 ``[batch, 5]``, the trait scores in ``helpers.TRAITS`` order.

Sequences are made ``length`` long with ``helpers.sequences.make_fixed_length``; the
default ``padding`` ``"zero_pad"`` keeps the first ``length`` frames of a longer clip and
puts zero frames (mask False) at the END of a shorter one; ``"uniform"`` spreads the
kept frames over a longer clip instead.

Only clips of the split with status ``"prepared"`` and labels are used. Which split a clip
is in comes from the manifest (the official splits) or from an ``assignment`` clip name ->
split (``split_assignment``: the official or the by-video scheme; a run folder records its own). One clip's file
is read at a time (a Python generator under ``tf.data.Dataset.from_generator``), so the
whole split never sits in memory. A cache file that fails to load (``CacheFileError``) is
skipped, never fed to the model: a warning naming it goes to the ``helpers.inputs``
logger, and the ``ClipSource`` keeps the names and reasons in ``skipped``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from helpers import SPLITS, TRAITS
from helpers.cache import CacheFileError, load_clip_cache, read_manifest
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


def split_assignment(manifest: dict[str, Any], split_scheme: str = "official", split_seed: int = 0) -> dict[str, str]:
    """clip name -> split under ``split_scheme`` (``helpers.labels.SPLIT_SCHEMES``), from a cache manifest.

    Over every labelled clip with an official split, whatever its prepare status, so the
    assignment of a clip does not change when other clips fail or are prepared later
    (``helpers.labels.assign_splits``; ``split_seed`` is used by ``"by-video"`` only).
    """
    official = {name: info["split"] for name, info in manifest["clips"].items()
                if info.get("split") in SPLITS and _labelled(info)}
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


def to_model_input(faces: np.ndarray, usable: np.ndarray, length: int,
                   padding: Strategy = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """One clip's crops (uint8 ``[n, s, s]``) and ``usable`` (bool ``[n]``) -> model input.

    Returns ``(faces, mask)``: float32 ``[length, s, s, 1]`` in [0, 1] and bool ``[length]``,
    True only for real frames with a usable face (``helpers.faces.FaceSequence.usable``,
    not ``found``: a face interpolated across a short miss is still the face). The same
    preprocessing serves training, evaluation and prediction.
    """
    faces = np.asarray(faces)
    usable = np.asarray(usable, dtype=bool)
    if faces.ndim != 3 or len(usable) != len(faces):
        raise ValueError(f"expected faces [n, s, s] and usable [n], got {faces.shape} and {usable.shape}")
    indices = fixed_length_indices(len(faces), length, padding)
    seq, real = take_frames(faces, indices)
    trusted, _ = take_frames(usable, indices)
    x = (seq.astype(np.float32) / np.float32(255.0))[..., None]
    return x, real & trusted


@dataclass
class ClipSource:
    """The clips of one split, read one file at a time; remembers the files it had to skip.

    Calling it returns a fresh generator of ``({"faces", "mask"}, targets)`` numpy
    examples. With ``shuffle`` the clip order is a permutation drawn from
    ``seed`` and the number of passes made so far: the same seed gives the same
    sequence of epochs, and each epoch has its own order.
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
        """``to_model_input`` of one clip, or None (logged, recorded) if its file is damaged."""
        if entry.name in self.skipped:
            return None
        try:
            data = load_clip_cache(entry.path)
            if data["faces"].shape[1:] != (self.size, self.size):
                raise CacheFileError(f"cache file {entry.path} holds {data['faces'].shape[1]}px faces, "
                                     f"expected {self.size}px; re-run prepare with --size {self.size}")
            if len(data["faces"]) == 0:
                raise CacheFileError(f"cache file {entry.path} holds no frames; re-run prepare")
        except CacheFileError as exc:
            with self._lock:
                self.skipped[entry.name] = str(exc)
            log.warning("skipping clip %s: %s", entry.name, exc)
            return None
        return to_model_input(data["faces"], data["usable"], self.length, self.padding)

    def __call__(self) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        with self._lock:
            pass_index, self.passes = self.passes, self.passes + 1
        for entry in self.order(pass_index):
            example = self.load(entry)
            if example is not None:
                yield {"faces": example[0], "mask": example[1]}, entry.labels

    @property
    def usable(self) -> list[ClipEntry]:
        """The entries not (yet) known to be damaged."""
        return [e for e in self.entries if e.name not in self.skipped]


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


def load_split_arrays(cache_dir: Path, split: str, length: int = 32,
                      padding: Strategy = DEFAULT_PADDING) -> dict[str, Any]:
    """The whole of ``split`` as numpy arrays (for evaluation of small splits).

    Returns ``{"faces": float32 [n, length, s, s, 1], "mask": bool [n, length], "y": float32 [n, 5],
    "names": [clip names], "skipped": {name: reason}}``; damaged files are skipped
    (and logged) as in training. Holds the split in memory: about 300 KB per clip at
    32 frames of 48x48, so fine for a few thousand clips.
    """
    source = clip_source(cache_dir, split, length, padding=padding)
    xs, masks, ys, names = [], [], [], []
    for entry in source.entries:
        example = source.load(entry)
        if example is None:
            continue
        xs.append(example[0])
        masks.append(example[1])
        ys.append(entry.labels)
        names.append(entry.name)
    s = source.size
    return {
        "faces": np.stack(xs) if xs else np.zeros((0, length, s, s, 1), np.float32),
        "mask": np.stack(masks) if masks else np.zeros((0, length), bool),
        "y": np.stack(ys) if ys else np.zeros((0, len(TRAITS)), np.float32),
        "names": names,
        "skipped": dict(source.skipped),
    }
