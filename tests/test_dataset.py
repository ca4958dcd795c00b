"""Tests for helpers.dataset and helpers.archives: clip names, finding clips, zips, annotation pickles, splits, assembly."""

from __future__ import annotations

import builtins
import os
import pickle
import struct
import subprocess
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import ANNOTATION_KEYS, TRAITS
from helpers import archives as ar
from helpers import dataset as ds

# --------------------------------------------------------------------------- fixtures


def scores_for(clips: list[str], seed: int = 0) -> dict[str, dict[str, float]]:
    """trait -> {clip: score}: the five traits as Python floats, interview as numpy.float64 (as shipped)."""
    rng = np.random.default_rng(seed)
    table: dict[str, dict] = {t: {c: float(rng.uniform()) for c in clips} for t in TRAITS}
    table["interview"] = {c: np.float64(rng.uniform()) for c in clips}
    return table


def real_pickle(clips: list[str], seed: int = 0) -> bytes:
    """An annotation file as First Impressions ships it: protocol 2, numpy.float64 interview values."""
    data = pickle.dumps(scores_for(clips, seed), protocol=2)
    assert data.startswith(b"\x80\x02")
    assert b"multiarray" in data and b"scalar" in data  # interview values go through numpy's scalar
    return data


def _binstring(raw: bytes) -> bytes:
    """SHORT_BINSTRING: how Python 2 pickled a str (arrives latin-1 decoded in Python 3)."""
    return b"U" + bytes([len(raw)]) + raw


def python2_pickle(table: dict[str, dict[str, float]]) -> bytes:
    """The opcodes Python 2 + old numpy wrote: ``numpy.core.multiarray.scalar`` for the interview values."""
    out = [b"\x80\x02}q\x00("]  # PROTO 2, EMPTY_DICT, BINPUT, MARK
    for trait, scores in table.items():
        out.append(_binstring(trait.encode()) + b"}(")
        for clip, value in scores.items():
            out.append(_binstring(clip.encode()))
            if trait == "interview":
                out.append(b"cnumpy.core.multiarray\nscalar\n"
                           b"cnumpy\ndtype\n" + _binstring(b"f8") + b"K\x00K\x01\x87R"  # dtype('f8', 0, 1)
                           b"(K\x03" + _binstring(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                           + _binstring(struct.pack("<d", value)) + b"\x86R")
            else:
                out.append(b"G" + struct.pack(">d", value))  # BINFLOAT
        out.append(b"u")
    out.append(b"u.")
    return b"".join(out)


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """A zip holding ``entries`` (name -> bytes), names written exactly as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def zip_bytes(entries: dict[str, bytes], tmp: Path) -> bytes:
    return make_zip(tmp, entries).read_bytes()


def set_encrypted_flag(path: Path) -> None:
    """Set bit 0 ('encrypted') of every entry's flags, in local and central headers (zipfile clears it when writing)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (i := data.find(signature, start)) >= 0:
            data[i + offset] |= 0x1
            start = i + 4
    path.write_bytes(bytes(data))


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- names and splits


@pytest.mark.parametrize("name, expected", [
    ("J4GQm9j0JZ0.003.mp4", "J4GQm9j0JZ0"),
    ("-Kq6c9J4GAk.001.mp4", "-Kq6c9J4GAk"),
    ("a_b-c.d.005.mp4", "a_b-c.d"),  # ids may hold '.', '-' and '_': only the last .NNN is the clip number
    ("x.12.000.mp4", "x.12"),
    ("J4GQm9j0JZ0.003", "J4GQm9j0JZ0"),
    ("train-1/training80_01/J4GQm9j0JZ0.003.mp4", "J4GQm9j0JZ0"),
])
def test_video_id(name, expected):
    assert ds.video_id(name) == expected
    assert ds.video_id(Path(name)) == expected


@pytest.mark.parametrize("name", ["J4GQm9j0JZ0.mp4", "noclipnumber", ".003.mp4"])
def test_video_id_refuses_other_names(name):
    with pytest.raises(ValueError, match="not '<video id>"):
        ds.video_id(name)


@pytest.mark.parametrize("name, split", [
    ("train-1", "train"), ("training80_01", "train"), ("validation80_03", "validation"),
    ("val-2", "validation"), ("test80_07", "test"), ("test-1", "test"),
    ("annotation_training.pkl", "train"), ("annotation_validation.pkl", "validation"),
    ("annotation_test.pkl", "test"), ("clips", None), ("contest", None), ("train_test", None),
])
def test_split_from_name(name, split):
    assert ds.split_from_name(name) == split


def test_folder_split_innermost_folder_wins(tmp_path):
    root = tmp_path / "test_runs"  # the root's own name never counts
    assert ds.folder_split(root / "train-1" / "training80_01" / "a.001.mp4", root) == "train"
    assert ds.folder_split(root / "old_test" / "validation80_01" / "a.001.mp4", root) == "validation"
    assert ds.folder_split(root / "a.001.mp4", root) is None
    assert ds.folder_split(tmp_path / "elsewhere" / "a.001.mp4", root) is None


# --------------------------------------------------------------------------- finding clips


def test_find_clips_any_nesting_skips_junk(tmp_path):
    for rel in ["train-1/training80_01/a.001.mp4", "train-1/training80_01/a.002.MP4",
                "validation/deep/er/b.001.mp4", "c.001.mp4"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * 10)
    # macOS resource forks, hidden folders and non-clips are not clips
    for rel in ["__MACOSX/train-1/._a.001.mp4", "train-1/._a.001.mp4", ".cache/z.001.mp4", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"junk")
    (tmp_path / "dir.001.mp4").mkdir()  # listed (prepare records it unreadable), never entered
    (tmp_path / "dir.001.mp4/inner.001.mp4").write_bytes(b"x")
    clips = ds.find_clips(tmp_path)
    assert sorted(clips) == ["a.001.mp4", "a.002.MP4", "b.001.mp4", "c.001.mp4", "dir.001.mp4"]
    assert clips["dir.001.mp4"].is_dir()
    del clips["dir.001.mp4"]
    assert clips["b.001.mp4"] == tmp_path / "validation/deep/er/b.001.mp4"
    splits = ds.clip_splits(clips, [tmp_path])
    assert splits == {"a.001.mp4": "train", "a.002.MP4": "train", "b.001.mp4": "validation", "c.001.mp4": None}


def test_find_clips_takes_every_video_suffix_in_any_case(tmp_path):
    names = ["a.001.mp4", "b.001.MP4", "c.001.mov", "d.001.MOV", "e.001.mkv", "f.001.webm", "g.001.avi", "h.001.Avi"]
    for name in names + ["notes.txt", "i.001.mp3", "j.001.mp4.part", "k.001.json"]:
        (tmp_path / name).write_bytes(name.encode())
    assert sorted(ds.find_clips(tmp_path)) == names
    assert {Path(n).suffix.lower() for n in names} == set(ds.VIDEO_SUFFIXES)


def test_find_clips_excludes_folders_and_follows_links_once(tmp_path):
    (tmp_path / "data/train").mkdir(parents=True)
    (tmp_path / "data/train/a.001.mp4").write_bytes(b"a")
    (tmp_path / "data/cache/extracted").mkdir(parents=True)
    (tmp_path / "data/cache/extracted/z.001.mp4").write_bytes(b"z")
    (tmp_path / "data/loop").symlink_to(tmp_path / "data")  # a link loop must end
    clips = ds.find_clips(tmp_path / "data", exclude=[tmp_path / "data/cache"])
    assert list(clips) == ["a.001.mp4"]


def test_find_clips_duplicates(tmp_path):
    a, b = tmp_path / "one/a.001.mp4", tmp_path / "two/a.001.mp4"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert ds.find_clips(tmp_path) == {"a.001.mp4": a}  # same size: one clip, the first found
    b.write_bytes(b"different")
    with pytest.raises(ds.DuplicateClipError) as err:
        ds.find_clips(tmp_path)
    assert str(a) in str(err.value) and str(b) in str(err.value)


# --------------------------------------------------------------------------- zips


def nested_train_zip(tmp_path: Path, source: Path) -> Path:
    """train-1.zip holding training80_01.zip and training80_02.zip, which hold clips (as shipped)."""
    inner1 = zip_bytes({"a.001.mp4": b"A" * 100, "a.002.mp4": b"B" * 50}, tmp_path / "i1.zip")
    inner2 = zip_bytes({"b.001.mp4": b"C" * 70}, tmp_path / "i2.zip")
    return make_zip(source / "train-1.zip", {"training80_01.zip": inner1, "training80_02.zip": inner2})


def test_extract_nested_zips(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "cache/extracted"
    nested_train_zip(tmp_path, source)
    archives = ar.find_archives(source)
    assert archives == [source / "train-1.zip"]
    report = ar.extract_archives(archives, source, dest, progress=False)
    assert report.folders == [dest / "train-1"] and report.skipped == []
    assert files_under(dest) == ["train-1/.extracted.json", "train-1/training80_01/.extracted.json",
                                 "train-1/training80_01/a.001.mp4", "train-1/training80_01/a.002.mp4",
                                 "train-1/training80_02/.extracted.json", "train-1/training80_02/b.001.mp4"]
    assert (dest / "train-1/training80_01/a.001.mp4").read_bytes() == b"A" * 100
    clips = ds.find_clips(dest)
    assert sorted(clips) == ["a.001.mp4", "a.002.mp4", "b.001.mp4"]
    assert set(ds.clip_splits(clips, [dest]).values()) == {"train"}


def test_extract_resumes_and_skips_finished(tmp_path, monkeypatch):
    source, dest = tmp_path / "src", tmp_path / "out"
    make_zip(source / "val-1.zip", {f"validation80_01/c.{i:03d}.mp4": bytes([i]) * (10 + i) for i in range(4)})
    ar.extract_archives(ar.find_archives(source), source, dest, progress=False)
    folder = dest / "val-1"
    copies = []
    real_copy = ar._copy_entry
    monkeypatch.setattr(ar, "_copy_entry", lambda *a: (copies.append(a[1].filename), real_copy(*a))[1])
    ar.extract_archives(ar.find_archives(source), source, dest, progress=False)
    assert copies == []  # finished (marker): nothing read again
    # a run killed part-way: no marker, one file missing, the others complete
    (folder / ar.EXTRACTED_MARKER).unlink()
    (folder / "validation80_01/c.002.mp4").unlink()
    ar.extract_archives(ar.find_archives(source), source, dest, progress=False)
    assert copies == ["validation80_01/c.002.mp4"]
    assert (folder / "validation80_01/c.002.mp4").read_bytes() == bytes([2]) * 12
    assert (folder / ar.EXTRACTED_MARKER).is_file()


@pytest.mark.parametrize("entry", [
    "../../evil.txt", "ok/../../evil.txt", "..\\..\\evil.txt", "/ABSOLUTE/evil.txt", "\\evil.txt",
    "C:/evil.txt", "C:evil.txt", "c:\\evil.txt",
])
def test_extract_refuses_entries_outside(tmp_path, entry):
    absolute = tmp_path / "abs" / "evil.txt"
    entry = entry.replace("/ABSOLUTE", str(tmp_path / "abs"))
    source, dest = tmp_path / "src", tmp_path / "out/extracted"
    archive = make_zip(source / "train-1.zip", {"good.001.mp4": b"fine", entry: b"pwned"})
    with pytest.raises(ar.UnsafeArchiveError) as err:
        ar.extract_archives([archive], source, dest, progress=False)
    assert str(archive) in str(err.value) and repr(entry) in str(err.value)
    assert not absolute.exists()
    assert not [p for p in tmp_path.rglob("*evil*")]  # nothing written anywhere
    assert not dest.exists() or files_under(dest) == []  # not even the good entry


def test_extract_refuses_traversal_inside_inner_zip(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "out"
    inner = zip_bytes({"a.001.mp4": b"ok", "../../../evil.txt": b"pwned"}, tmp_path / "inner.zip")
    make_zip(source / "train-1.zip", {"training80_01.zip": inner})
    with pytest.raises(ar.UnsafeArchiveError, match="training80_01.zip") as err:
        ar.extract_archives(ar.find_archives(source), source, dest, progress=False)
    assert "../../../evil.txt" in str(err.value)
    assert not [p for p in tmp_path.rglob("*evil*")]


def test_extract_refuses_links_out_of_the_folder(tmp_path):
    source, dest, outside = tmp_path / "src", tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    archive = make_zip(source / "train-1.zip", {"sub/x.001.mp4": b"data"})
    (dest / "train-1").mkdir(parents=True)
    (dest / "train-1/sub").symlink_to(outside)  # planted link inside the extraction folder
    with pytest.raises(ar.UnsafeArchiveError, match="outside"):
        ar.extract_archives([archive], source, dest, progress=False)
    assert list(outside.iterdir()) == []


def test_encrypted_zip_says_what_to_do(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "out"
    archive = make_zip(source / "val-1.zip", {"validation80_01.zip": b"x" * 40})
    assert not ar.archive_is_encrypted(archive)
    set_encrypted_flag(archive)
    with zipfile.ZipFile(archive) as zf:
        assert zf.infolist()[0].flag_bits & 0x1  # zipfile itself sees it as encrypted
    assert ar.archive_is_encrypted(archive)
    with pytest.raises(ar.EncryptedArchiveError) as err:
        ar.extract_archives([archive], source, dest, progress=False)
    message = str(err.value)
    assert str(archive) in message and "unzip -P PASSWORD val-1.zip" in message and "slowly" in message
    assert not dest.exists()
    with pytest.raises(ar.EncryptedArchiveError):  # also when called on the archive directly
        ar.extract_archive(archive, dest / "val-1")


def test_encrypted_zip_already_extracted_beside_is_skipped(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "out"
    archive = make_zip(source / "val-1.zip", {"validation80_01.zip": b"x" * 40, "validation80_02.zip": b"y" * 30})
    set_encrypted_flag(archive)
    (source / "val-1").mkdir()
    (source / "val-1/validation80_01.zip").write_bytes(b"x" * 40)  # what `unzip -P` gave, in part
    with pytest.raises(ar.EncryptedArchiveError):
        ar.extract_archives([archive], source, dest, progress=False)
    (source / "val-1/validation80_02.zip").write_bytes(b"y" * 30)
    report = ar.extract_archives([archive], source, dest, progress=False)
    assert report.folders == [] and report.skipped[0]["archive"] == str(archive)
    assert "password" in report.skipped[0]["reason"]


def test_damaged_zip_is_named(tmp_path):
    bad = tmp_path / "train-2.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ar.ArchiveError, match="train-2.zip"):
        ar.extract_archives([bad], tmp_path, tmp_path / "out", progress=False)


def zeros_zip(path: Path, name: str, size: int, others: dict[str, bytes] | None = None) -> Path:
    """A zip with ``others`` (stored) and one deflated entry of ``size`` zero bytes (written in chunks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for other, data in (others or {}).items():
            zf.writestr(other, data)
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=size > 2**31) as out:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                out.write(chunk)
    return path


def test_zip_bomb_entry_is_skipped_and_the_rest_extracted(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "out"
    archive = zeros_zip(source / "train-1.zip", "training80_01/zeros.001.mp4", 64 << 20,
                        {"training80_01/good.001.mp4": b"G" * 500})
    assert archive.stat().st_size < 1 << 20
    report = ar.extract_archives([archive], source, dest, progress=False)
    assert files_under(dest) == ["train-1/.extracted.json", "train-1/training80_01/good.001.mp4"]
    [skip] = report.skipped
    assert skip["archive"] == str(archive) and skip["entry"] == "training80_01/zeros.001.mp4"
    assert "100 times its compressed size" in skip["reason"] and "not extracted" in skip["reason"]
    again = ar.extract_archives([archive], source, dest, progress=False)  # a re-run reports it again
    assert again.skipped == report.skipped


def test_entry_above_the_cap_is_skipped(tmp_path, monkeypatch):
    source, dest = tmp_path / "src", tmp_path / "out"
    archive = make_zip(source / "train-1.zip", {"a.001.mp4": b"A" * 2000, "b.001.mp4": b"B" * 100})
    monkeypatch.setattr(ar, "MAX_ENTRY_BYTES", 1000)
    report = ar.extract_archives([archive], source, dest, progress=False)
    assert files_under(dest) == ["train-1/.extracted.json", "train-1/b.001.mp4"]
    assert [(d["entry"], "cap per entry" in d["reason"]) for d in report.skipped] == [("a.001.mp4", True)]


def test_caps_are_enforced_on_the_bytes_written_not_the_header(tmp_path, monkeypatch):
    source, dest = tmp_path / "src", tmp_path / "out"
    archive = zeros_zip(source / "train-1.zip", "zeros.001.mp4", 8 << 20, {"b.001.mp4": b"B" * 100})
    monkeypatch.setattr(ar, "_header_problem", lambda info: None)  # as if the header had lied
    report = ar.extract_archives([archive], source, dest, progress=False)
    assert files_under(dest) == ["train-1/.extracted.json", "train-1/b.001.mp4"]  # no part file kept
    assert report.skipped[0]["entry"] == "zeros.001.mp4" and "nothing kept" in report.skipped[0]["reason"]


def test_archive_above_the_total_cap_is_refused(tmp_path, monkeypatch):
    source, dest = tmp_path / "src", tmp_path / "out"
    inner = zip_bytes({"a.001.mp4": b"A" * 600, "a.002.mp4": b"B" * 600}, tmp_path / "i.zip")
    archive = make_zip(source / "train-1.zip", {"training80_01.zip": inner})
    outer = zipfile.ZipFile(archive).getinfo("training80_01.zip").file_size
    monkeypatch.setattr(ar, "MAX_ARCHIVE_BYTES", outer + 1000)  # the inner zip fits; its 1,200 bytes do not
    with pytest.raises(ar.ArchiveError, match="cap per archive") as err:
        ar.extract_archives([archive], source, dest, progress=False)
    assert "training80_01.zip" in str(err.value)  # the inner zip, whose entries pass the outer's total
    assert not [p for p in dest.rglob("*.mp4")]


def test_damaged_entry_is_skipped_and_the_rest_extracted(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "out"
    archive = make_zip(source / "train-1.zip", {"a.001.mp4": b"A" * 300, "b.001.mp4": b"B" * 300,
                                                "c.001.mp4": b"C" * 300})
    data = bytearray(archive.read_bytes())
    data[data.index(b"B" * 300) + 150] ^= 0xFF  # stored entry: its CRC no longer matches
    archive.write_bytes(bytes(data))
    report = ar.extract_archives([archive], source, dest, progress=False)
    assert files_under(dest) == ["train-1/.extracted.json", "train-1/a.001.mp4", "train-1/c.001.mp4"]
    [skip] = report.skipped
    assert skip["entry"] == "b.001.mp4" and "damaged" in skip["reason"] and "CRC" in skip["reason"]


def test_duplicate_entries_are_reported(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "out"
    archive = source / "train-1.zip"
    source.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in [("same.001.mp4", b"S" * 10), ("same.001.mp4", b"S" * 10),
                               ("differ.001.mp4", b"one"), ("differ.001.mp4", b"two!"), ("ok.001.mp4", b"k")]:
                zf.writestr(name, data)
    report = ar.extract_archives([archive], source, dest, progress=False)
    assert files_under(dest) == ["train-1/.extracted.json", "train-1/ok.001.mp4", "train-1/same.001.mp4"]
    reasons = {d["entry"]: d["reason"] for d in report.skipped}
    assert "same content; extracted once" in reasons["same.001.mp4"]
    assert "different contents; none extracted" in reasons["differ.001.mp4"]


# --------------------------------------------------------------------------- assembly


def test_assemble_a_folder_with_a_zip(tmp_path):
    """Clips from the folder and from its zip, split from annotation file over folder, labels attached."""
    source = tmp_path / "src"
    (source / "test80_01").mkdir(parents=True)
    (source / "test80_01" / "c.001.mp4").write_bytes(b"C")  # folder says test, annotation says validation
    nested_train_zip(tmp_path, source)
    (source / "annotation_validation.pkl").write_bytes(real_pickle(["c.001.mp4", "gone.001.mp4"]))
    found = ds.assemble(source, extract_to=tmp_path / "x")
    assert list(found.clips) == ["a.001.mp4", "a.002.mp4", "b.001.mp4", "c.001.mp4"]
    assert {n: c.split for n, c in found.clips.items()} == {
        "a.001.mp4": "train", "a.002.mp4": "train", "b.001.mp4": "train", "c.001.mp4": "validation"}
    assert found.clips["c.001.mp4"].labels == pytest.approx(
        {k: v[ "c.001.mp4"] for k, v in scores_for(["c.001.mp4", "gone.001.mp4"]).items()})
    assert found.clips["a.001.mp4"].labels is None
    assert found.clips["a.001.mp4"].path.is_relative_to(tmp_path / "x")
    assert found.match.labels_without_clip == ["gone.001.mp4"]
    assert found.split_conflicts == [{"clip": "c.001.mp4", "folder": "test", "annotation": "validation"}]
    assert [p.name for p in found.extraction.folders] == ["train-1"]


def test_assemble_a_zip_reads_annotations_beside_it_only(tmp_path):
    source = tmp_path / "src"
    archive = nested_train_zip(tmp_path, source)
    (source / "annotation_training.pkl").write_bytes(real_pickle(["a.001.mp4"]))
    (source / "deeper").mkdir()
    (source / "deeper" / "annotation_test.pkl").write_bytes(real_pickle(["b.001.mp4"]))  # not beside it
    found = ds.assemble(archive, extract_to=tmp_path / "x")
    assert list(found.labels.files) == [str(source / "annotation_training.pkl")]
    with pytest.raises(ValueError, match="extract_to"):
        ds.assemble(source)  # zips and nowhere to unpack them


# --------------------------------------------------------------------------- annotations


def test_load_real_format_annotations(tmp_path):
    clips = ["J4GQm9j0JZ0.003.mp4", "-Kq6c9J4GAk.001.mp4", "a.b_c.002.mp4"]
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(real_pickle(clips))
    expected = scores_for(clips)
    loaded = ds.load_annotations(path)
    assert set(loaded) == set(ANNOTATION_KEYS)
    for trait in ANNOTATION_KEYS:
        assert loaded[trait] == {c: float(v) for c, v in expected[trait].items()}
        assert all(type(v) is float for v in loaded[trait].values())
    assert ds.annotation_split(path) == "train"


def test_load_python2_pickle_with_old_numpy_path(tmp_path):
    clips = ["J4GQm9j0JZ0.003.mp4", "zz_top-1.000.mp4"]
    table = {t: {c: float(v) for c, v in s.items()} for t, s in scores_for(clips, seed=3).items()}
    data = python2_pickle(table)
    assert data.startswith(b"\x80\x02") and b"numpy.core.multiarray\nscalar" in data
    with warnings.catch_warnings():  # the fixture is a valid pickle: the full unpickler reads it too
        warnings.simplefilter("ignore")
        plain = pickle.loads(data, encoding="latin1")
    assert isinstance(plain["interview"][clips[0]], np.float64)
    assert {t: {c: float(v) for c, v in s.items()} for t, s in plain.items()} == table
    path = tmp_path / "annotation_validation.pkl"
    path.write_bytes(data)
    loaded = ds.load_annotations(path)
    assert loaded == table
    assert type(loaded["interview"][clips[1]]) is float
    assert np.dtype("f8").byteorder == "="  # the dtype the pickle BUILDs was a copy, not numpy's shared one


class _Reduce:
    """Pickles as ``func(*args)``: what a malicious annotation file would hold."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _attacks(sentinel: Path) -> dict[str, object]:
    return {
        "os.system": _Reduce(os.system, f"touch {sentinel}"),
        "builtins.exec": _Reduce(builtins.exec, f"open({str(sentinel)!r}, 'w').close()"),
        "builtins.eval": _Reduce(builtins.eval, f"open({str(sentinel)!r}, 'w')"),
        "subprocess": _Reduce(subprocess.call, ["touch", str(sentinel)]),
        "numpy other than scalars": _Reduce(np.save, str(sentinel), np.zeros(1)),
    }


@pytest.mark.parametrize("attack", list(_attacks(Path("x"))))
@pytest.mark.parametrize("where", ["top", "inside a valid table"])
def test_code_running_pickle_is_refused(tmp_path, attack, where):
    sentinel = tmp_path / "SENTINEL"
    payload = _attacks(sentinel)[attack]
    if where == "top":
        obj = payload
    else:
        obj = scores_for(["a.001.mp4"])
        obj["interview"]["a.001.mp4"] = payload
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(ds.AnnotationFileError) as err:
        ds.load_annotations(path)
    assert str(path) in str(err.value) and "refuse" in str(err.value)
    assert not sentinel.exists() and not Path(str(sentinel) + ".npy").exists()


def test_object_dtype_scalar_is_refused(tmp_path):
    data = (b"\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\n" + _binstring(b"O8")
            + b"K\x00K\x01\x87R" + _binstring(b"x" * 8) + b"\x86R.")
    path = tmp_path / "annotation_test.pkl"
    path.write_bytes(data)
    with pytest.raises(ds.AnnotationFileError, match="not a numeric dtype"):
        ds.load_annotations(path)


def _valid_table():
    return {t: {"a.001.mp4": 0.5, "b.002.mp4": 0.25} for t in ANNOTATION_KEYS}


def _with(trait, clip, value):
    table = _valid_table()
    table[trait][clip] = value
    return table


@pytest.mark.parametrize("obj, why", [
    ([1, 2, 3], "expected a dict"),
    ({t: {"a.001.mp4": 0.5} for t in TRAITS[:4]}, "missing"),
    (_with("openness", "a.001.mp4", 1.5), "score in \\[0, 1\\]"),
    (_with("openness", "a.001.mp4", -0.1), "score in \\[0, 1\\]"),
    (_with("interview", "a.001.mp4", float("nan")), "score in \\[0, 1\\]"),
    (_with("openness", "a.001.mp4", "high"), "score in \\[0, 1\\]"),
    (_with("openness", "a.001.mp4", True), "score in \\[0, 1\\]"),
    (_with("openness", 17, 0.5), "score in \\[0, 1\\]"),
    (_with("openness", "c.003.mp4", 0.5), "same clips"),
    ({**_valid_table(), "openness": [0.5]}, "expected a dict clip -> score"),
])
def test_wrong_shape_is_named(tmp_path, obj, why):
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(ds.AnnotationFileError, match=why) as err:
        ds.load_annotations(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("data", [b"", b"garbage, not a pickle", b"\x80\x02}q\x00(U\x01a"])
def test_unreadable_pickle_is_named(tmp_path, data):
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(data)
    with pytest.raises(ds.AnnotationFileError, match="cannot be loaded") as err:
        ds.load_annotations(path)
    assert str(path) in str(err.value)


def test_find_annotation_files_and_collect_labels(tmp_path):
    (tmp_path / "labels").mkdir()
    train, val = tmp_path / "annotation_training.pkl", tmp_path / "labels/annotation_validation.pkl"
    train.write_bytes(real_pickle(["a.001.mp4", "a.002.mp4", "gone.001.mp4"]))
    val.write_bytes(python2_pickle({t: {"v.001.mp4": 0.3} for t in ANNOTATION_KEYS}))
    (tmp_path / "other.pkl").write_bytes(b"not labels")
    files = ds.find_annotation_files(tmp_path)
    assert files == [train, val]
    labels = ds.collect_labels(files)
    assert labels.files == {str(train): "train", str(val): "validation"}
    assert labels.split == {"a.001.mp4": "train", "a.002.mp4": "train", "gone.001.mp4": "train",
                            "v.001.mp4": "validation"}
    assert labels.by_clip["v.001.mp4"] == {t: 0.3 for t in ANNOTATION_KEYS}
    match = ds.match_labels(["a.001.mp4", "a.002.mp4", "v.001.mp4", "new.001.mp4"], labels.by_clip)
    assert match.matched == ["a.001.mp4", "a.002.mp4", "v.001.mp4"]
    assert match.labels_without_clip == ["gone.001.mp4"]
    assert match.clips_without_label == ["new.001.mp4"]


def test_collect_labels_copies_agree_or_fail(tmp_path):
    a, b = tmp_path / "annotation_training.pkl", tmp_path / "copy/annotation_training.pkl"
    b.parent.mkdir()
    a.write_bytes(real_pickle(["a.001.mp4"]))
    b.write_bytes(real_pickle(["a.001.mp4"]))
    assert len(ds.collect_labels([a, b]).by_clip) == 1  # an identical copy is fine
    b.write_bytes(real_pickle(["a.001.mp4"], seed=1))
    with pytest.raises(ds.AnnotationFileError) as err:
        ds.collect_labels([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value)


# --------------------------------------------------------------------------- hostile pickles: bounded work


def shared_references(levels: int = 40, width: int = 10) -> list:
    """A list whose full repr has ``width ** levels`` items, pickled in a few hundred bytes (shared references)."""
    inner: list = [0.5]
    for _ in range(levels):
        inner = [inner] * width
    return inner


def nested_lists_pickle(depth: int) -> bytes:
    """``[[[...[0.5]...]]]`` nested ``depth`` deep, as a table's score (pickle.dumps itself would overflow)."""
    value = b"]" * depth + b"G?\xe0\x00\x00\x00\x00\x00\x00" + b"a" * depth
    table = b"".join(b"X" + len(t).to_bytes(4, "little") + t.encode() + b"}X\x09\x00\x00\x00a.001.mp4" + value + b"s"
                     for t in TRAITS)
    return b"\x80\x02}(" + table + b"u."


def nested_tuple_key_pickle(depth: int) -> bytes:
    """A dict whose key is a tuple nested ``depth`` deep: hashing it recurses in C."""
    return b"\x80\x02}N" + b"\x85" * depth + b"K\x01s."


def timed_load(path: Path) -> tuple[ds.AnnotationFileError, float]:
    start = time.monotonic()
    with pytest.raises(ds.AnnotationFileError) as err:
        ds.load_annotations(path)
    return err.value, time.monotonic() - start


@pytest.mark.parametrize("where", ["score", "top", "dtype"])
def test_shared_reference_pickle_is_refused_in_bounded_time(tmp_path, where):
    bomb = shared_references()
    if where == "score":
        data = pickle.dumps({t: {"a.001.mp4": bomb} for t in TRAITS}, protocol=2)
    elif where == "top":
        data = pickle.dumps(bomb, protocol=2)
    else:  # numpy.dtype(<the bomb>): its own refusal message must not expand it either
        data = b"\x80\x02cnumpy\ndtype\n" + pickle.dumps(bomb, protocol=2)[2:-1] + b"\x85R."
    assert len(data) < 2048
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(data)
    err, seconds = timed_load(path)
    message = str(err)
    assert str(path) in message and "list" in message and len(message) < 1000, message
    assert seconds < 10


def test_deeply_nested_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(nested_lists_pickle(100_000))
    err, seconds = timed_load(path)
    assert str(path) in str(err) and "score in [0, 1]" in str(err) and "list [[[...]]]" in str(err), str(err)
    assert not isinstance(err.__cause__, RecursionError) and seconds < 10


@pytest.mark.parametrize("depth", [33, 1_000_000])
def test_deeply_nested_tuple_keys_are_refused_before_unpickling(tmp_path, depth):
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(nested_tuple_key_pickle(depth))  # 1,000,000 deep: the C unpickler crashed (SIGSEGV)
    err, seconds = timed_load(path)
    assert str(path) in str(err) and "nests tuples more than 32 deep" in str(err) and seconds < 10


def test_a_huge_memo_index_is_refused_before_unpickling(tmp_path):
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(b"\x80\x02Nr\xff\xff\xff\x0f.")  # LONG_BINPUT 2**28: a 4 GB memo in the C unpickler
    err, _ = timed_load(path)
    assert str(path) in str(err) and "memo index" in str(err)


def test_a_file_above_the_size_cap_is_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(pickle.dumps({t: {"a.001.mp4": 0.5} for t in TRAITS}, protocol=2))
    monkeypatch.setattr(ds, "MAX_ANNOTATION_BYTES", path.stat().st_size - 1)
    monkeypatch.setattr(ds, "_AnnotationUnpickler", None)  # never reached
    err, _ = timed_load(path)
    assert str(path) in str(err) and "refused unread" in str(err)


def test_real_sized_annotation_files_pass_the_checks(tmp_path):
    rng = np.random.default_rng(0)
    clips = [f"J4GQm9j0J{i:02d}.{i % 6:03d}.mp4" for i in range(6000)]
    table = {t: {c: float(rng.uniform()) for c in clips} for t in TRAITS}
    table["interview"] = {c: np.float64(rng.uniform()) for c in clips}
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(pickle.dumps(table, protocol=2))
    assert path.stat().st_size < ds.MAX_ANNOTATION_BYTES / 10
    assert ds.load_annotations(path)["openness"] == table["openness"]


@pytest.mark.parametrize("value, shown", [(2 ** 100_000, "int ..."), ("x" * 10_000, "str 'xxxxxxxx"),
                                           (list(range(10 ** 5)), "list [0, 1, 2, ...]")],
                         ids=["huge int", "long str", "long list"])
def test_describe_is_bounded(value, shown):
    text = ds.describe(value)
    assert text.startswith(shown) and len(text) < 100


def test_an_int_too_large_for_a_float_is_a_wrong_score(tmp_path):
    path = tmp_path / "annotation_training.pkl"
    path.write_bytes(pickle.dumps({t: {"a.001.mp4": 10 ** 400} for t in TRAITS}, protocol=2))
    err, _ = timed_load(path)
    assert "score in [0, 1]" in str(err)
