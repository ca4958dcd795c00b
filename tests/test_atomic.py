"""Tests for helpers.atomic: whole files or none, the umask's mode, errors naming the file."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from helpers.atomic import current_umask, write_atomic, write_json_atomic


@pytest.fixture
def umask():
    """Set a umask for one test and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o000, 0o666)])
def test_files_get_the_mode_open_would_give(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_json_atomic(tmp_path / "a.json", {"a": 1})
    write_atomic(tmp_path / "b.bin", lambda f: f.write(b"b"))
    for path in (plain, tmp_path / "a.json", tmp_path / "b.bin"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert current_umask() == mask  # reading it changed nothing


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "cache" / "clip.npz"

    def fill(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() raises it: no file name

    with pytest.raises(OSError) as err:
        write_atomic(target, fill)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert str(target) in str(err.value) and "No space left" in str(err.value)
    assert list(target.parent.iterdir()) == []  # no temporary file, no half file


def test_errors_that_name_their_file_pass_unchanged(tmp_path):
    mine = FileNotFoundError(errno.ENOENT, "gone", "/some/source")

    def fail(f):
        raise mine

    with pytest.raises(FileNotFoundError) as err:
        write_atomic(tmp_path / "x", fail)
    assert err.value is mine and list(tmp_path.iterdir()) == []


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.json"
    write_json_atomic(target, {"v": 1})

    def interrupted(f):
        f.write(b"{")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, interrupted)
    assert target.read_text() == '{\n  "v": 1\n}' and [p.name for p in tmp_path.iterdir()] == ["m.json"]
