"""Find the clips and annotations of ChaLearn First Impressions V2, and split them safely.

The dataset comes as 10,000 clips named ``<YouTube id>.<NNN>.mp4`` (several clips per
video, all showing the same person) in three official splits, shipped as zips of zips
(``train-1.zip`` holds ``training80_01.zip`` ... which hold the clips) plus one
annotation pickle per split (``annotation_training.pkl`` ...). This module:

- ``video_id``: the YouTube id of a clip (clips of one id show one person);
- ``find_clips``: clip name -> path in extracted folders of any nesting;
- ``find_archives`` / ``extract_archive`` / ``extract_archives``: unpack the distributed
  zips (and the zips inside them) into a folder of our own, safely and resumably;
- ``load_annotations``: read an annotation pickle *without* running code from it;
- ``collect_labels`` / ``match_labels``: labels per clip, and what failed to match;
- ``split_from_name`` / ``folder_split``: official splits from file and folder names;
- ``group_split``: custom splits that keep every person (YouTube id) on one side.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from helpers import TRAITS

#: The official splits, in the order reports list them.
SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: File suffixes taken as clips (lower case); First Impressions ships only .mp4.
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4",)
#: How deep zips inside zips are unpacked (the dataset nests one level; more is suspicious).
MAX_ZIP_DEPTH = 3
#: Written inside a folder once its archive is fully unpacked, so a re-run skips it.
EXTRACTED_MARKER = ".extracted.json"

# "J4GQm9j0JZ0.003.mp4": the id is everything before the last ".NNN" (ids may hold '.', '-', '_').
_CLIP_NAME = re.compile(r"^(?P<id>.+)\.(?P<num>\d+)(?:\.[A-Za-z0-9]+)?$")
# Folders that hold no clips but junk copies of them (macOS resource forks, notebook checkpoints).
_SKIP_DIRS = {"__MACOSX"}


class DatasetError(ValueError):
    """A problem with the dataset files; the message names the file and what to do."""


class DuplicateClipError(DatasetError):
    """Two different files carry the same clip name."""


class UnsafeArchiveError(DatasetError):
    """A zip entry would be written outside the extraction folder."""


class EncryptedArchiveError(DatasetError):
    """A password-protected zip, which prepare does not unpack itself."""


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


# --------------------------------------------------------------------------- walking folders


def _walk_files(root: Path, exclude: Iterable[Path] = (), dir_suffixes: Sequence[str] = ()) -> Iterator[Path]:
    """Every file under ``root`` in sorted order, skipping hidden folders, __MACOSX and ``exclude``.

    Follows symbolic links to folders (datasets are often linked in) but never visits a
    folder twice, so link loops end. Folders whose name ends with one of ``dir_suffixes``
    are yielded too (not entered): a folder named like a clip must not vanish unnoticed.
    """
    excluded = {Path(p).resolve() for p in exclude}
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        real = here.resolve()
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and d not in _SKIP_DIRS and (here / d).resolve() not in excluded
        )
        named_like_files = [d for d in dirnames if d.lower().endswith(tuple(dir_suffixes))] if dir_suffixes else []
        dirnames[:] = [d for d in dirnames if d not in named_like_files]
        for name in sorted(filenames + named_like_files):
            if not name.startswith("."):  # '._x.mp4' are macOS resource forks, not clips
                yield here / name


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
        for path in _walk_files(root, exclude, dir_suffixes=suffixes):
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


# --------------------------------------------------------------------------- zips


def find_archives(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every ``.zip`` under ``root`` (sorted), skipping hidden folders, __MACOSX and ``exclude``."""
    return [p for p in _walk_files(Path(root), exclude) if p.suffix.lower() == ".zip"]


def archive_is_encrypted(archive: Path) -> bool:
    """True when any entry of the zip has the 'encrypted' flag (bit 0 of its general-purpose flags)."""
    with zipfile.ZipFile(archive) as zf:
        return any(info.flag_bits & 0x1 for info in zf.infolist())


def _encrypted_message(archive: Path) -> str:
    return (f"{archive} is password-protected. Python's zipfile decrypts such zips very slowly, "
            f"so prepare does not: extract it yourself with `unzip -P PASSWORD {archive.name}` "
            "(the password is on the dataset's official ChaLearn page) and point prepare at the "
            "folder holding what it extracted (the zip may stay beside it).")


def safe_entry_path(name: str, archive: Path | str) -> PurePosixPath:
    """The relative path a zip entry is written to; refuses names that would leave the folder.

    Refused: absolute paths ('/x', '\\x'), drive letters ('C:x') and any '..' part, with
    backslashes read as separators (zips made on Windows use them).
    """
    clean = name.replace("\\", "/")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean) or ".." in parts or not parts:
        raise UnsafeArchiveError(
            f"{archive}: entry {name!r} would be written outside the extraction folder; "
            "refusing to extract this archive (it may be damaged or malicious; nothing was written outside)")
    return PurePosixPath(*parts)


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / EXTRACTED_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: Path) -> None:
    """Stream one entry to ``target`` through a temporary file, so a killed run leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            shutil.copyfileobj(src, out, length=1 << 20)
        os.replace(tmp, target)
    except zipfile.BadZipFile as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DatasetError(f"{archive}: entry {info.filename!r} is damaged ({exc}); re-download the archive") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extract_archive(archive: Path, folder: Path, progress: bool = False, _depth: int = 0) -> Path:
    """Unpack ``archive`` into ``folder``, and every zip inside it into a folder named after it.

    ``train-1.zip`` -> ``folder/training80_01/clip.mp4`` (the inner ``training80_01.zip`` is
    unpacked into ``folder/training80_01/`` and then deleted: it is our own copy). Every
    entry name is checked before anything is written (``safe_entry_path``); encrypted
    zips raise ``EncryptedArchiveError``. Resumable: a finished folder holds
    ``EXTRACTED_MARKER`` and is skipped; in an unfinished one, files already there with
    the right size are kept. Returns ``folder``.
    """
    archive, folder = Path(archive), Path(folder)
    size = archive.stat().st_size
    marker = _read_marker(folder)
    if marker is not None and marker.get("archive") == archive.name and marker.get("size") == size:
        return folder
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive} is not a readable zip ({exc}); re-download it") from exc
    with zf:
        infos = zf.infolist()
        if any(info.flag_bits & 0x1 for info in infos):
            raise EncryptedArchiveError(_encrypted_message(archive))
        # Check every name first: a bad entry refuses the whole archive before any byte is written.
        planned = [(info, safe_entry_path(info.filename, archive)) for info in infos if not info.is_dir()]
        folder.mkdir(parents=True, exist_ok=True)
        top = folder.resolve()
        entries = planned
        if progress:
            from tqdm import tqdm

            entries = tqdm(planned, desc=f"unzip {archive.name}", unit="file", leave=False)
        for info, rel in entries:
            target = folder / rel
            # A link already inside the folder could still point elsewhere: check where it lands.
            if not target.resolve().is_relative_to(top):
                raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} resolves to {target.resolve()}, "
                                         f"outside {folder}; refusing to extract it")
            nested = rel.suffix.lower() == ".zip" and _depth + 1 < MAX_ZIP_DEPTH
            if nested:
                inner = target.with_suffix("")
                done = _read_marker(inner)
                if done is not None and done.get("archive") == rel.name and done.get("size") == info.file_size:
                    target.unlink(missing_ok=True)  # a run killed between marking and deleting
                    continue
            if not (target.is_file() and target.stat().st_size == info.file_size):
                _copy_entry(zf, info, target, archive)
            if nested:
                extract_archive(target, target.with_suffix(""), progress=False, _depth=_depth + 1)
                target.unlink()  # our own copy of the inner zip; its content is unpacked beside it
    from helpers.cache import write_json_atomic  # the cache module owns atomic writes

    write_json_atomic(folder / EXTRACTED_MARKER, {"archive": archive.name, "size": size, "files": len(planned)})
    return folder


def _already_extracted(archive: Path, files: Mapping[str, set[int]]) -> bool:
    """True when every file of ``archive`` has a same-named, same-sized file in ``files`` (name -> sizes)."""
    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    return bool(infos) and all(i.file_size in files.get(PurePosixPath(i.filename.replace("\\", "/")).name, ())
                               for i in infos)


@dataclass
class ExtractReport:
    """What ``extract_archives`` did: folders it unpacked into, and archives it left alone (with why)."""

    folders: list[Path] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def extract_archives(archives: Sequence[Path], root: Path, dest: Path, progress: bool = True,
                     exclude: Iterable[Path] = ()) -> ExtractReport:
    """Unpack each zip (found under ``root``) into ``dest/<its folder relative to root>/<its stem>/``.

    An encrypted zip is skipped when its files already lie extracted under ``root`` (same
    names and sizes: the user ran ``unzip -P`` beside it); otherwise it raises
    ``EncryptedArchiveError`` with what to do. ``exclude``: folders under ``root`` not to
    search for such files (the cache).
    """
    exclude = [Path(dest), *exclude]
    report = ExtractReport()
    files_by_name: dict[str, set[int]] | None = None
    for archive in archives:
        archive = Path(archive)
        try:
            encrypted = archive_is_encrypted(archive)
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{archive} is not a readable zip ({exc}); re-download it") from exc
        if encrypted:
            if files_by_name is None:  # built once, and only when needed
                files_by_name = {}
                for path in _walk_files(root, exclude):
                    if path != archive:
                        files_by_name.setdefault(path.name, set()).add(path.stat().st_size)
            if _already_extracted(archive, files_by_name):
                report.skipped.append({"archive": str(archive),
                                       "reason": "password-protected; its files are already extracted beside it"})
                continue
            raise EncryptedArchiveError(_encrypted_message(archive))
        rel = archive.parent.relative_to(root) if archive.parent.is_relative_to(root) else Path()
        report.folders.append(extract_archive(archive, Path(dest) / rel / archive.stem, progress=progress))
    return report


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


def find_annotation_files(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Annotation pickles under ``root`` (any file ``*annotation*.pkl``), sorted."""
    return [p for p in _walk_files(Path(root), exclude)
            if p.suffix.lower() == ".pkl" and "annotation" in p.name.lower()]


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


# --------------------------------------------------------------------------- custom splits


def group_split(clip_names: Iterable[str], test_size: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split clips into (train, test) so that no YouTube id (no person) is on both sides.

    Uses scikit-learn's ``GroupShuffleSplit`` grouped by ``video_id``, so ``test_size`` is
    the fraction (or number) of *videos*, not clips. A random per-clip split (as in the
    original article) puts clips of one person on both sides and overstates accuracy.
    The result depends only on the set of names and ``seed``; both lists are sorted.
    """
    from sklearn.model_selection import GroupShuffleSplit

    names = sorted(set(clip_names))  # sorted: the same set gives the same split in any order
    groups = [video_id(n) for n in names]
    if len(set(groups)) < 2:
        raise ValueError(f"group_split needs clips of at least 2 videos, got {len(set(groups))}")
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    try:
        train_idx, test_idx = next(splitter.split(names, groups=groups))
    except ValueError as exc:  # e.g. test_size leaves one side without a video
        raise ValueError(f"group_split of {len(set(groups))} videos with test_size={test_size}: {exc}") from exc
    return sorted(names[i] for i in train_idx), sorted(names[i] for i in test_idx)
