"""The distributed zips: find them, check every entry, unpack them safely and resumably.

First Impressions V2 ships as zips of zips (``train-1.zip`` holds ``training80_01.zip``
... which hold the clips). This module:

- ``walk_files``: every file under a folder, in sorted order, skipping junk folders;
- ``find_archives``: the zips under a folder;
- ``safe_entry_path``: the path a zip entry is written to, refusing names that leave the folder;
- ``extract_archive`` / ``extract_archives``: unpack the zips (and the zips inside them)
  into a folder of our own; a finished folder holds ``EXTRACTED_MARKER`` and is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from helpers.atomic import write_atomic, write_json_atomic

#: How deep zips inside zips are unpacked (the dataset nests one level; more is suspicious).
MAX_ZIP_DEPTH = 3
#: Written inside a folder once its archive is fully unpacked, so a re-run skips it.
EXTRACTED_MARKER = ".extracted.json"

# Folders that hold no clips but junk copies of them (macOS resource forks, notebook checkpoints).
_SKIP_DIRS = {"__MACOSX"}


class ArchiveError(ValueError):
    """A zip that cannot be unpacked; the message names it and what to do."""


class UnsafeArchiveError(ArchiveError):
    """A zip entry would be written outside the extraction folder."""


class EncryptedArchiveError(ArchiveError):
    """A password-protected zip, which prepare does not unpack itself."""


def walk_files(root: Path, exclude: Iterable[Path] = (), dir_suffixes: Sequence[str] = ()) -> Iterator[Path]:
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



def find_archives(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every ``.zip`` under ``root`` (sorted), skipping hidden folders, __MACOSX and ``exclude``."""
    return [p for p in walk_files(Path(root), exclude) if p.suffix.lower() == ".zip"]


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
    """Stream one entry to ``target`` atomically, so a killed run leaves no half file."""
    try:
        write_atomic(target, lambda out: _copy_from(zf, info, out), suffix=".part")
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{archive}: entry {info.filename!r} is damaged ({exc}); re-download the archive") from exc


def _copy_from(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out) -> None:
    with zf.open(info) as src:
        shutil.copyfileobj(src, out, length=1 << 20)


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
        raise ArchiveError(f"{archive} is not a readable zip ({exc}); re-download it") from exc
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
            from tqdm.auto import tqdm

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
            raise ArchiveError(f"{archive} is not a readable zip ({exc}); re-download it") from exc
        if encrypted:
            if files_by_name is None:  # built once, and only when needed
                files_by_name = {}
                for path in walk_files(root, exclude):
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
