"""Find the clips and annotations of ChaLearn First Impressions V2, and split them safely.

The dataset comes as 10,000 clips named ``<YouTube id>.<NNN>.mp4`` (several clips per
video, all showing the same person) in three official splits, shipped as zips of zips
(``train-1.zip`` holds ``training80_01.zip`` ... which hold the clips) plus one
annotation pickle per split (``annotation_training.pkl`` ...). This module:

- ``video_id``: the YouTube id of a clip (clips of one id show one person);
- ``find_clips``: clip name -> path in extracted folders of any nesting;
- ``assemble``: everything above for one source folder or zip: clips with their split
  and labels, what matched and what was unpacked (the zips themselves: ``helpers.archives``);
- ``load_annotations``: read an annotation pickle *without* running code from it;
- ``collect_labels`` / ``match_labels``: labels per clip, and what failed to match;
- ``split_from_name`` / ``folder_split``: official splits from file and folder names.

Splits that keep every person (YouTube id) on one side: ``helpers.labels`` (the by-video
split scheme, ``train --split-scheme by-video``).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from helpers import TRAITS
from helpers.archives import ExtractReport, extract_archives, find_archives, walk_files

#: File suffixes taken as clips (lower case); First Impressions ships only .mp4.
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4",)

# "J4GQm9j0JZ0.003.mp4": the id is everything before the last ".NNN" (ids may hold '.', '-', '_').
_CLIP_NAME = re.compile(r"^(?P<id>.+)\.(?P<num>\d+)(?:\.[A-Za-z0-9]+)?$")


class DatasetError(ValueError):
    """A problem with the dataset files; the message names the file and what to do."""


class DuplicateClipError(DatasetError):
    """Two different files carry the same clip name."""


class AnnotationFileError(DatasetError):
    """An annotation file that is unreadable, of the wrong shape, or refers to code."""


# --------------------------------------------------------------------------- names and splits


def video_id(clip_name: str | os.PathLike) -> str:
    """The YouTube id of a clip: the part before the last ``.NNN`` (``'J4GQm9j0JZ0.003.mp4'`` -> ``'J4GQm9j0JZ0'``)."""
    name = Path(clip_name).name
    match = _CLIP_NAME.match(name)
    if match is None:
        raise ValueError(f"clip name {name!r} is not '<video id>.<number>.mp4' as in First Impressions")
    return match["id"]


def is_clip_name(name: str | os.PathLike) -> bool:
    """Whether ``name`` is ``'<video id>.<number>.<ext>'``: the rule ``video_id`` applies."""
    return _CLIP_NAME.match(Path(name).name) is not None


def split_from_name(name: str) -> str | None:
    """The official split a folder or annotation file name points to, or None.

    Words starting with 'train' -> "train", 'val' -> "validation", 'test' -> "test"
    ("train-1", "training80_01", "annotation_validation.pkl", "val-2", "test80_07");
    a name pointing to two splits gives None.
    """
    stem = name[: -len(".pkl")] if name.lower().endswith(".pkl") else name
    found = set()
    for word in re.split(r"[^a-z]+", stem.lower()):
        if word.startswith("train"):
            found.add("train")
        elif word.startswith("val"):
            found.add("validation")
        elif word.startswith("test"):
            found.add("test")
    return found.pop() if len(found) == 1 else None


def folder_split(path: Path, root: Path) -> str | None:
    """The split named by the folders between ``root`` and the clip at ``path`` (innermost wins), or None."""
    try:
        parts = Path(path).parent.relative_to(root).parts
    except ValueError:
        return None
    for part in reversed(parts):  # innermost first: 'test_runs/train-1/x.mp4' is a training clip
        split = split_from_name(part)
        if split is not None:
            return split
    return None


# --------------------------------------------------------------------------- finding clips


def find_clips(roots: Path | Sequence[Path], suffixes: Sequence[str] = VIDEO_SUFFIXES,
               exclude: Iterable[Path] = ()) -> dict[str, Path]:
    """Clip file name -> path, for every clip under ``roots`` (any nesting).

    Duplicate rule: the same name found twice is one clip when both files have the same
    size (say a zip's extracted folder next to another copy); the first found (roots in
    order, then sorted paths) is kept. Two *different* files with one name raise
    ``DuplicateClipError`` naming both, since a label could not say which it belongs to.
    A folder named like a clip is listed too, so that ``prepare`` records it unreadable.
    """
    roots = [Path(roots)] if isinstance(roots, (str, os.PathLike)) else [Path(r) for r in roots]
    suffixes = tuple(s.lower() for s in suffixes)
    exclude = list(exclude)
    clips: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for path in walk_files(root, exclude, dir_suffixes=suffixes):
            if path.suffix.lower() not in suffixes:
                continue
            first = clips.get(path.name)
            if first is None:
                clips[path.name] = path
            elif first.stat().st_size != path.stat().st_size:
                raise DuplicateClipError(
                    f"two different files are named {path.name}: {first} and {path}; "
                    "remove one (clip names must be unique across the dataset)")
    return clips


def clip_splits(clips: Mapping[str, Path], roots: Sequence[Path]) -> dict[str, str | None]:
    """Clip name -> split from its folders (see ``folder_split``), relative to the deepest root holding it."""
    roots = sorted((Path(r) for r in roots), key=lambda r: len(r.parts), reverse=True)
    result: dict[str, str | None] = {}
    for name, path in clips.items():
        result[name] = None
        for root in roots:
            if Path(path).is_relative_to(root):
                result[name] = folder_split(path, root)
                break
    return result


# --------------------------------------------------------------------------- annotations


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # Python 3 pickles of bytes at protocol 2 call _codecs.encode(text, 'latin1'); allow only that.
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not allowed")
    return text.encode("latin1")


def _numeric_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    # copy=True always: without it numpy returns its shared float64 dtype, which the pickle's
    # BUILD step would then modify for the whole process.
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(f"numpy.dtype({spec!r}) is not allowed")
    dtype = np.dtype(spec, align=bool(align), copy=True)
    if dtype.kind not in "fiub":
        raise pickle.UnpicklingError(f"numpy.dtype({spec!r}) is not a numeric dtype")
    return dtype


def _numeric_scalar(dtype: Any, data: Any = b"") -> Any:
    # What numpy's multiarray.scalar does for a numeric dtype, without numpy's object paths.
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiub":
        raise pickle.UnpicklingError(f"numpy scalar of {dtype!r} is not allowed")
    raw = data.encode("latin1") if isinstance(data, str) else data  # Python 2 str arrives latin1-decoded
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar data of {type(data).__name__} does not fit {dtype}")
    return np.frombuffer(raw, dtype=dtype)[0]


#: The only globals an annotation pickle may name: numpy scalar reconstruction (under both
#: numpy spellings) and the latin-1 encode Python 3 uses for bytes. Each maps to our own
#: checked function, so even these never reach numpy's general object paths.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "scalar"): _numeric_scalar,
    ("numpy._core.multiarray", "scalar"): _numeric_scalar,
    ("numpy", "dtype"): _numeric_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _AnnotationUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, strings, numbers and numeric numpy scalars."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which annotation files never hold; refused "
                "(unpickling can run code, so nothing from this file was run)")
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it uses persistent ids, which annotation files never hold; refused")


def _as_score(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool) in [0, 1], else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    score = float(value)
    return score if math.isfinite(score) and 0.0 <= score <= 1.0 else None


def load_annotations(path: Path) -> dict[str, dict[str, float]]:
    """Read an annotation pickle: trait -> {clip name: score}, for every trait it holds.

    First Impressions files are Python 2 pickles (protocol 2) holding the five traits and
    ``interview`` (numpy.float64 scalars); all values come back as Python floats. The
    file is read with a restricted unpickler (see ``_ALLOWED_GLOBALS``): anything that
    could run code is refused before it runs. Raises ``AnnotationFileError`` naming the
    file when it is unreadable, refused or not a dict of dicts of scores in [0, 1]
    covering the five traits for the same clips.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnnotationFileError(f"annotation file {path} cannot be read ({exc})") from exc
    try:
        obj = _AnnotationUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # any malformed pickle; nothing outside _ALLOWED_GLOBALS can have run
        raise AnnotationFileError(f"annotation file {path} cannot be loaded: {exc}") from exc

    def bad(why: str) -> AnnotationFileError:
        return AnnotationFileError(f"annotation file {path} is not a First Impressions annotation file: {why}")

    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise bad(f"expected a dict trait -> {{clip: score}}, got {type(obj).__name__}")
    missing = [t for t in TRAITS if t not in obj]
    if missing:
        raise bad(f"traits {missing} are missing (it holds {sorted(obj)})")
    result: dict[str, dict[str, float]] = {}
    for trait, scores in obj.items():
        if not isinstance(scores, dict):
            raise bad(f"'{trait}' holds a {type(scores).__name__}, expected a dict clip -> score")
        table: dict[str, float] = {}
        for clip, value in scores.items():
            score = _as_score(value)
            if not isinstance(clip, str) or score is None:
                raise bad(f"'{trait}' has {clip!r}: {value!r}; expected clip name -> score in [0, 1]")
            table[clip] = score
        result[trait] = table
    clips = set(result[TRAITS[0]])
    for trait, table in result.items():
        if set(table) != clips:
            raise bad(f"'{trait}' covers {len(table)} clips but '{TRAITS[0]}' covers {len(clips)}; "
                      "every trait must score the same clips")
    return result


def is_annotation_file(path: Path) -> bool:
    """The rule for annotation pickles: any file named ``*annotation*.pkl`` (case ignored)."""
    path = Path(path)
    return path.suffix.lower() == ".pkl" and "annotation" in path.name.lower()


def find_annotation_files(root: Path, exclude: Iterable[Path] = (), recursive: bool = True) -> list[Path]:
    """Annotation pickles (``is_annotation_file``) under ``root``, sorted; only its own files unless ``recursive``."""
    root = Path(root)
    if not recursive:
        return sorted(p for p in root.iterdir() if p.is_file() and is_annotation_file(p))
    return [p for p in walk_files(root, exclude) if is_annotation_file(p)]


def annotation_split(path: Path) -> str | None:
    """The split of an annotation file from its name ('annotation_training.pkl' -> 'train'), or None."""
    return split_from_name(Path(path).name)


@dataclass
class Labels:
    """Labels gathered from annotation files: per clip, the split of its file, and the files read."""

    #: clip name -> trait -> score (every trait the files hold).
    by_clip: dict[str, dict[str, float]] = field(default_factory=dict)
    #: clip name -> split of the annotation file it came from (None when the file name has none).
    split: dict[str, str | None] = field(default_factory=dict)
    #: annotation file -> its split.
    files: dict[str, str | None] = field(default_factory=dict)


def labels_by_clip(annotations: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Turn trait -> {clip: score} (``load_annotations``) into clip -> {trait: score}."""
    by_clip: dict[str, dict[str, float]] = {}
    for trait, scores in annotations.items():
        for clip, score in scores.items():
            by_clip.setdefault(clip, {})[trait] = score
    return by_clip


def collect_labels(paths: Iterable[Path]) -> Labels:
    """Read annotation files into labels per clip.

    The same clip in two files is fine when the scores agree (e.g. a file and a copy of
    it); different scores or different splits raise ``AnnotationFileError`` naming both files.
    """
    labels = Labels()
    origin: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        split = annotation_split(path)
        labels.files[str(path)] = split
        for clip, scores in labels_by_clip(load_annotations(path)).items():
            if clip in origin:
                if labels.by_clip[clip] != scores or labels.split[clip] != split:
                    raise AnnotationFileError(
                        f"clip {clip} has different labels or splits in {origin[clip]} and {path}; "
                        "pass only one of them (--labels)")
                continue
            origin[clip] = path
            labels.by_clip[clip] = scores
            labels.split[clip] = split
    return labels


@dataclass
class Match:
    """How clips and labels matched: names sorted."""

    matched: list[str]
    labels_without_clip: list[str]
    clips_without_label: list[str]


def match_labels(clip_names: Iterable[str], labelled_names: Iterable[str]) -> Match:
    """Compare the clips found with the clips labelled, both ways."""
    clips, labelled = set(clip_names), set(labelled_names)
    return Match(sorted(clips & labelled), sorted(labelled - clips), sorted(clips - labelled))


# --------------------------------------------------------------------------- assembly


class Clip(NamedTuple):
    """One clip found: its file, its split (None if nothing names one) and its labels (None if unlabelled)."""

    path: Path
    split: str | None
    labels: dict[str, float] | None


class Assembly(NamedTuple):
    """What ``assemble`` found: clips by name, how labels matched, the zips unpacked, split conflicts."""

    #: clip name -> ``Clip``, sorted by name.
    clips: dict[str, Clip]
    #: labels per clip, the split of each clip's annotation file, and the files read.
    labels: Labels
    match: Match
    extraction: ExtractReport
    #: clips whose folder names one split and whose annotation file another (the annotation wins).
    split_conflicts: list[dict[str, str | None]]


def assemble(source: Path, labels: Sequence[Path] | None = None, *, extract_to: Path | None = None,
             exclude: Iterable[Path] = (), progress: bool = False) -> Assembly:
    """Find every clip of First Impressions under ``source``, with its split and labels.

    ``source``: a folder with the clips (extracted, any nesting) and/or the distributed
    zips, or one zip. Zips are unpacked into ``extract_to`` (``helpers.archives``), which
    is searched for clips and annotation files too; a source with zips needs one.
    Labels come from the annotation pickles found (``find_annotation_files``: under the
    folder, or beside the zip) unless ``labels`` lists the files. ``exclude``: folders
    under ``source`` never searched (the cache).

    A clip's split is its annotation file's (the official assignment of a labelled clip),
    else the one its folders name (``folder_split``); where both name one and they
    differ, the clip is listed in ``split_conflicts``.
    """
    source = Path(source)
    exclude = [Path(p) for p in exclude]
    if source.is_file():
        if source.suffix.lower() != ".zip":
            raise ValueError(f"dataset source {source} is a file but not a .zip; pass the dataset folder")
        root, archives, roots = source.parent, [source], []
    else:
        root, archives, roots = source, find_archives(source, exclude=exclude), [source]
    if extract_to is not None:
        extract_to = Path(extract_to)
        roots.append(extract_to)
    elif archives:
        raise ValueError(f"{source} holds zips ({archives[0].name}, ...): pass extract_to, a folder to unpack them into")
    extraction = (extract_archives(archives, root, extract_to, progress=progress, exclude=exclude)
                  if archives else ExtractReport())
    paths = find_clips(roots, exclude=exclude)
    if labels is None:
        # Beside a zip, not through the whole folder tree it happens to sit in.
        labels = (find_annotation_files(root, recursive=False) if source.is_file()
                  else find_annotation_files(source, exclude=exclude))
        if extract_to is not None and extract_to.is_dir():
            labels += find_annotation_files(extract_to)
    for path in labels:
        if not Path(path).is_file():
            raise FileNotFoundError(f"annotation file {path} not found")
    found = collect_labels(labels)
    folder = clip_splits(paths, roots)
    split = {n: found.split.get(n) or folder[n] for n in paths}
    conflicts = [{"clip": n, "folder": folder[n], "annotation": found.split[n]}
                 for n in sorted(paths)
                 if folder[n] and found.split.get(n) and folder[n] != found.split[n]]
    clips = {n: Clip(paths[n], split[n], found.by_clip.get(n)) for n in sorted(paths)}
    return Assembly(clips, found, match_labels(paths, found.by_clip), extraction, conflicts)
