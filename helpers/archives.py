"""The distributed zips: find them, check every entry, unpack them safely and resumably.

First Impressions V2 ships as zips of zips (``train-1.zip`` holds ``training80_01.zip``
... which hold the clips). This module:

- ``walk_files``: every file under a folder, in sorted order, skipping junk folders;
- ``find_archives``: the zips under a folder;
- ``safe_entry_path``: the path a zip entry is written to, refusing names that leave the folder;
- ``extract_archive`` / ``extract_archives``: unpack the zips (and the zips inside them)
  into a folder of our own; a finished folder holds ``EXTRACTED_MARKER`` and is skipped.

Size caps (zip bombs): an entry above ``MAX_ENTRY_BYTES`` unpacked, or above ``MAX_RATIO``
times its compressed size (past ``RATIO_FLOOR``: clips and zips barely compress), is not
extracted; an archive whose entries, inner zips' included, add up to more than
``MAX_ARCHIVE_BYTES`` is refused. The header's sizes are checked first and the same caps
enforced on the bytes really written. An entry refused so, a damaged entry (CRC error) or
a name listed twice is a skipped entry (archive, entry, reason) in the report; the rest
of the archive is extracted.
"""

from __future__ import annotations

import json
import os
import re
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
#: Largest entry unpacked. First Impressions' largest entries are its inner zips of 80 clips
#: (a few hundred MB); a clip is a few MB.
MAX_ENTRY_BYTES = 4 << 30
#: Largest total unpacked from one archive, inner zips' entries included (a train zip holds
#: 12-13 groups of 80 clips, a few GB).
MAX_ARCHIVE_BYTES = 64 << 30
#: Entries larger than ``RATIO_FLOOR`` unpacked that are more than ``MAX_RATIO`` times their
#: compressed size are refused: video and zips compress by a few percent, zeros by 1000x.
MAX_RATIO, RATIO_FLOOR = 100, 1 << 20

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


class _EntryTooLarge(Exception):
    """Raised while streaming an entry past its cap (its header understated it)."""


@dataclass
class _Budget:
    """Bytes one top-level archive may still unpack (``MAX_ARCHIVE_BYTES``), shared with its inner zips."""

    left: int


def _amount(n: int) -> str:
    """A byte count for people: bytes, KiB, MiB or GiB."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def _entry_cap(info: zipfile.ZipInfo, budget: _Budget) -> int:
    """The most bytes ``info`` may unpack to: the entry cap, the ratio cap, what the archive has left."""
    return min(MAX_ENTRY_BYTES, max(RATIO_FLOOR, MAX_RATIO * info.compress_size), budget.left)


def _header_problem(info: zipfile.ZipInfo) -> str | None:
    """Why the header's sizes refuse ``info``, or None."""
    if info.file_size > MAX_ENTRY_BYTES:
        return f"{_amount(info.file_size)} unpacked, above the {_amount(MAX_ENTRY_BYTES)} cap per entry"
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
        return (f"{_amount(info.file_size)} unpacked from {_amount(info.compress_size)}, more than "
                f"{MAX_RATIO} times its compressed size (a zip bomb? clips barely compress)")
    return None


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: Path, limit: int) -> int:
    """Stream one entry to ``target`` atomically (a killed run leaves no half file); returns its size.

    Stops with ``_EntryTooLarge`` past ``limit`` bytes (the header is not trusted), keeping nothing.
    """
    written = [0]

    def copy(out) -> None:
        with zf.open(info) as src:
            while chunk := src.read(1 << 20):
                written[0] += len(chunk)
                if written[0] > limit:
                    raise _EntryTooLarge(f"more than {_amount(limit)} unpacked (the caps), though its header "
                                         f"says {_amount(info.file_size)}: refused, nothing kept")
                out.write(chunk)

    write_atomic(target, copy, suffix=".part")
    return written[0]


def _skip(archive: Path, info: zipfile.ZipInfo, reason: str) -> dict[str, str]:
    return {"archive": str(archive), "entry": info.filename, "reason": reason}


def _plan(archive: Path, infos: list[zipfile.ZipInfo]) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]],
                                                              list[dict[str, str]]]:
    """The entries to extract with their paths, and the duplicate names (reported, never silently picked).

    Every name is checked first: one unsafe entry refuses the whole archive before any
    byte is written. A name listed twice with the same size and CRC is extracted once; with
    different contents, neither copy is (which one is the clip cannot be told).
    """
    by_path: dict[PurePosixPath, list[zipfile.ZipInfo]] = {}
    for info in infos:
        if not info.is_dir():
            by_path.setdefault(safe_entry_path(info.filename, archive), []).append(info)
    planned, skipped = [], []
    for rel, same in by_path.items():
        if len(same) == 1:
            planned.append((same[0], rel))
        elif len({(i.file_size, i.CRC) for i in same}) == 1:
            planned.append((same[0], rel))
            skipped.append(_skip(archive, same[0], f"listed {len(same)} times with the same content; extracted once"))
        else:
            skipped.append(_skip(archive, same[0], f"listed {len(same)} times with different contents; none "
                                                   "extracted (which one is right cannot be told): fix the archive"))
    return planned, skipped


def _open_zip(archive: Path) -> zipfile.ZipFile:
    """``archive`` opened, or ``ArchiveError`` / ``EncryptedArchiveError`` saying what to do."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{archive} is not a readable zip ({exc}); re-download it") from exc
    if any(info.flag_bits & 0x1 for info in zf.infolist()):
        zf.close()
        raise EncryptedArchiveError(_encrypted_message(archive))
    return zf


def _finished(folder: Path, name: str, size: int) -> dict[str, Any] | None:
    """The marker of ``folder`` when it records ``name`` of ``size`` bytes as fully unpacked, else None."""
    marker = _read_marker(folder)
    if marker is not None and marker.get("archive") == name and marker.get("size") == size:
        return marker
    return None


@dataclass
class _Unpacking:
    """One archive being unpacked: where, how deep, the shared byte budget, the entries skipped."""

    archive: Path
    folder: Path
    depth: int
    budget: _Budget
    skipped: list[dict[str, str]]


def _extract_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: PurePosixPath, job: _Unpacking) -> None:
    """Write one entry (and unpack it when it is an inner zip); a refused or damaged entry is skipped."""
    target = job.folder / rel
    # A link already inside the folder could still point elsewhere: check where it lands.
    if not target.resolve().is_relative_to(job.folder.resolve()):
        raise UnsafeArchiveError(f"{job.archive}: entry {info.filename!r} resolves to {target.resolve()}, "
                                 f"outside {job.folder}; refusing to extract it")
    nested = rel.suffix.lower() == ".zip" and job.depth + 1 < MAX_ZIP_DEPTH
    if nested:
        done = _finished(target.with_suffix(""), rel.name, info.file_size)
        if done is not None:
            target.unlink(missing_ok=True)  # a run killed between marking and deleting
            job.skipped.extend(done.get("skipped", []))
            return
    problem = _header_problem(info)
    if problem is not None:
        job.skipped.append(_skip(job.archive, info, problem + "; not extracted"))
        return
    try:
        if target.is_file() and target.stat().st_size == info.file_size:
            written = info.file_size
        else:
            written = _copy_entry(zf, info, target, job.archive, _entry_cap(info, job.budget))
    except zipfile.BadZipFile as exc:
        job.skipped.append(_skip(job.archive, info, f"damaged ({exc}); not extracted: re-download the archive"))
        return
    except _EntryTooLarge as exc:
        job.skipped.append(_skip(job.archive, info, str(exc)))
        return
    job.budget.left -= written
    if nested:
        extract_archive(target, target.with_suffix(""), skipped=job.skipped, _depth=job.depth + 1, _budget=job.budget)
        target.unlink()  # our own copy of the inner zip; its content is unpacked beside it


def extract_archive(archive: Path, folder: Path, progress: bool = False, *, skipped: list[dict[str, str]] | None = None,
                    _depth: int = 0, _budget: _Budget | None = None) -> Path:
    """Unpack ``archive`` into ``folder``, and every zip inside it into a folder named after it.

    ``train-1.zip`` -> ``folder/training80_01/clip.mp4`` (the inner ``training80_01.zip`` is
    unpacked into ``folder/training80_01/`` and then deleted: it is our own copy). Every
    entry name is checked before anything is written (``safe_entry_path``); encrypted
    zips raise ``EncryptedArchiveError``, archives above ``MAX_ARCHIVE_BYTES`` unpacked
    ``ArchiveError``. Entries refused by the size caps, damaged or listed twice are
    appended to ``skipped`` (dicts: archive, entry, reason) and the rest is extracted.
    Resumable: a finished folder holds ``EXTRACTED_MARKER`` (with its skipped entries) and
    is skipped; in an unfinished one, files already there with the right size are kept.
    Returns ``folder``.
    """
    archive, folder = Path(archive), Path(folder)
    skipped = [] if skipped is None else skipped
    size = archive.stat().st_size
    done = _finished(folder, archive.name, size)
    if done is not None:
        skipped.extend(done.get("skipped", []))
        return folder
    budget = _Budget(MAX_ARCHIVE_BYTES) if _budget is None else _budget
    with _open_zip(archive) as zf:
        planned, duplicates = _plan(archive, zf.infolist())
        total = sum(info.file_size for info, _ in planned)
        if total > budget.left:
            raise ArchiveError(f"{archive} would unpack to {_amount(total)} more, above the {_amount(MAX_ARCHIVE_BYTES)} "
                               "cap per archive, inner zips included (a zip bomb?); nothing more extracted from it")
        job = _Unpacking(archive, folder, _depth, budget, duplicates)
        folder.mkdir(parents=True, exist_ok=True)
        entries = planned
        if progress:
            from tqdm.auto import tqdm

            entries = tqdm(planned, desc=f"unzip {archive.name}", unit="file", leave=False)
        for info, rel in entries:
            _extract_entry(zf, info, rel, job)
    write_json_atomic(folder / EXTRACTED_MARKER, {"archive": archive.name, "size": size, "files": len(planned),
                                                  "skipped": job.skipped})
    skipped.extend(job.skipped)
    return folder


def _already_extracted(archive: Path, files: Mapping[str, set[int]]) -> bool:
    """True when every file of ``archive`` has a same-named, same-sized file in ``files`` (name -> sizes)."""
    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    return bool(infos) and all(i.file_size in files.get(PurePosixPath(i.filename.replace("\\", "/")).name, ())
                               for i in infos)


@dataclass
class ExtractReport:
    """What ``extract_archives`` did: folders it unpacked into, and what it left alone (with why).

    ``skipped``: dicts with ``archive`` and ``reason``, and ``entry`` for one entry of an
    archive (refused by a size cap, damaged, or a name listed twice).
    """

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
        report.folders.append(extract_archive(archive, Path(dest) / rel / archive.stem, progress=progress,
                                              skipped=report.skipped))
    return report
