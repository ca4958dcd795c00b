"""helpers.cache: the clip file format (found and usable) and the manifest version check."""

import json

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
