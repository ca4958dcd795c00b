"""helpers.cache: the clip file format (found and usable) and the manifest version check."""

import json
import re

import numpy as np
import pytest

from helpers import cache as C


def _write(path, found, usable, n=4, size=8):
    C.save_clip_cache(path, np.zeros((n, size, size), np.uint8), found, usable, np.zeros((n, 4)), np.arange(n), 30.0)


def test_clip_file_keeps_found_and_usable_apart(tmp_path):
    path = tmp_path / "clips" / "a.000.npz"
    found, usable = [True, False, False, True], [True, True, False, True]
    _write(path, found, usable)
    arrays = C.load_clip_cache(path)
    assert set(arrays) == set(C.CACHE_ARRAYS)
    assert arrays["found"].tolist() == found and arrays["usable"].tolist() == usable
    assert arrays["usable"].dtype == bool


def test_clip_file_without_usable_is_refused_naming_it(tmp_path):
    """What version 2 wrote: no ``usable``."""
    path = tmp_path / "old.npz"
    np.savez(path, faces=np.zeros((2, 8, 8), np.uint8), found=np.ones(2, bool), boxes=np.zeros((2, 4), np.float32),
             frame_indices=np.arange(2), fps=np.float64(30))
    with pytest.raises(C.CacheFileError, match=r"old\.npz lacks \['usable'\].*re-run prepare"):
        C.load_clip_cache(path)


@pytest.mark.parametrize("usable", [[True, False, True], [True, True]], ids=["found-not-usable", "short"])
def test_inconsistent_usable_is_refused(tmp_path, usable):
    path = tmp_path / "bad.npz"
    np.savez(path, faces=np.zeros((3, 8, 8), np.uint8), found=np.ones(3, bool), usable=np.array(usable),
             boxes=np.zeros((3, 4), np.float32), frame_indices=np.arange(3), fps=np.float64(30))
    with pytest.raises(C.CacheFileError, match="bad.npz.*re-run prepare"):
        C.load_clip_cache(path)


def test_manifest_of_version_2_is_refused_naming_the_folder(tmp_path):
    (tmp_path / C.MANIFEST_NAME).write_text(json.dumps({"version": 2, "settings": {"num_frames": 32, "size": 48},
                                                        "clips": {}}))
    with pytest.raises(C.CacheVersionError, match=f"{tmp_path} was prepared by an older version.*re-run"):
        C.read_manifest(tmp_path)
    assert C.MANIFEST_VERSION == 4


def _npy(shape: tuple, descr: str, data: bytes) -> bytes:
    """A .npy member whose header says ``shape`` and ``descr``, followed by ``data`` (any length)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def with_faces_header(path, shape: tuple) -> None:
    """Rewrite the cache file ``path`` so its faces header claims ``shape``; the bytes stay those of the real array."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    faces = np.load(path)["faces"]
    members["faces.npy"] = _npy(shape, "|u1", faces.tobytes())
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize("shape", [(10**9, 8, 8), (2**40, 8, 8), (4, 8, 8, 1)], ids=["1e9", "2^40", "4d"])
def test_header_claiming_another_shape_is_refused_before_reading(tmp_path, shape, monkeypatch):
    path = tmp_path / "clips" / "huge.000.npz"
    _write(path, [True] * 4, [True] * 4)
    with_faces_header(path, shape)
    read = []
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: read.append(a) or np.zeros(0))
    with pytest.raises(C.CacheFileError, match=re.escape(str(path)) + ".*re-run prepare"):
        C.load_clip_cache(path)
    assert read == []  # refused from the header: faces come first, nothing was read or allocated


def test_header_within_the_file_but_beyond_the_settings_is_refused(tmp_path):
    path = tmp_path / "clips" / "a.000.npz"
    _write(path, [True] * 4, [True] * 4, n=4, size=8)
    assert len(C.load_clip_cache(path, num_frames=4, size=8)["faces"]) == 4
    with pytest.raises(C.CacheFileError, match=r"a\.000\.npz: 'faces' holds 4 frames.*at most 3"):
        C.load_clip_cache(path, num_frames=3)
    with pytest.raises(C.CacheFileError, match=r"a\.000\.npz holds faces of \(8, 8\) pixels.*16x16"):
        C.load_clip_cache(path, size=16)


def test_cap_on_declared_bytes(tmp_path, monkeypatch):
    path = tmp_path / "a.000.npz"
    _write(path, [True] * 4, [True] * 4, n=4, size=8)
    monkeypatch.setattr(C, "MAX_ARRAY_BYTES", 4 * 8 * 8 - 1)  # a real file just above the cap
    with pytest.raises(C.CacheFileError, match="at most 255 allowed"):
        C.load_clip_cache(path)


def test_full_disk_names_the_file(tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C, "write_json_atomic", full)
    with pytest.raises(C.CacheWriteError, match=re.escape(str(tmp_path / C.MANIFEST_NAME)) + ".*disk is full"):
        C.write_manifest(tmp_path, {"clips": {}})
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(C.CacheWriteError, match=r"a\.000\.npz \(No space left on device\): the disk is full"):
        _write(tmp_path / "clips" / "a.000.npz", [True] * 4, [True] * 4)
    assert not list((tmp_path / "clips").iterdir())  # no temporary file left behind
