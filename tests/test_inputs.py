"""helpers.inputs: the tf.data pipeline over a small hand-made cache."""

import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import TRAITS
from helpers.atomic import write_json_atomic
from helpers.cache import MANIFEST_VERSION, clip_cache_path, save_clip_cache
from helpers import inputs as I

SIZE = 48


def _labels(value: float) -> dict:
    # Written in scrambled key order: the pipeline must still use TRAITS order.
    keys = list(reversed(TRAITS)) + ["interview"]
    return {k: round(value + 0.01 * TRAITS.index(k), 4) if k in TRAITS else 0.5 for k in keys}


def make_cache(root: Path, clips: dict) -> Path:
    """A cache folder; ``clips``: name -> dict(split, n, found, usable, value, status, pixel, labels).

    ``usable`` defaults to ``found``, which defaults to all True.
    """
    cache = root / "cache"
    entries = {}
    for name, spec in clips.items():
        status = spec.get("status", "prepared")
        path = clip_cache_path(cache, name)
        n = spec.get("n", 6)
        file = None
        if status == "prepared":
            pixel = spec.get("pixel")
            if pixel is None:
                faces = (np.arange(n)[:, None, None] * 10 + 5 + np.zeros((n, SIZE, SIZE))).astype(np.uint8)
            else:
                faces = np.full((n, SIZE, SIZE), pixel, np.uint8)
            found = np.asarray(spec.get("found", [True] * n), bool)
            usable = np.asarray(spec.get("usable", found), bool)
            save_clip_cache(path, faces, found, usable, np.zeros((n, 4)), np.arange(n), 25.0)
            file = str(path.relative_to(cache))
        entries[name] = {
            "split": spec.get("split", "train"), "status": status, "file": file,
            "labels": spec.get("labels", _labels(spec.get("value", 0.3))),
            "n_frames": n, "n_found": n, "n_usable": n, "fps": 25.0, "error": None, "warning": None,
        }
    write_json_atomic(cache / "manifest.json", {"version": MANIFEST_VERSION, "settings": {"num_frames": 8, "size": SIZE},
                                                "clips": entries})
    return cache


def split_arrays(cache: Path, split: str, length: int, padding: str = "zero_pad") -> dict:
    """The whole split as the model takes it, through the one path (``ClipSource.arrays``), plus ``skipped``."""
    source = I.clip_source(cache, split, length, padding=padding)
    return {**source.arrays(), "skipped": dict(source.skipped)}


@pytest.fixture
def cache(tmp_path):
    clips = {f"c{i}.000.mp4": {"split": "train", "value": 0.1 * i} for i in range(6)}
    # frame 1 missed and bridged (usable), frame 4 missed and not usable
    clips["short.000.mp4"] = {"split": "validation", "n": 5, "found": [True, False, True, True, False],
                              "usable": [True, True, True, True, False]}
    clips["long.000.mp4"] = {"split": "validation", "n": 12}
    clips["white.000.mp4"] = {"split": "test", "pixel": 255}
    clips["grey.000.mp4"] = {"split": "test", "pixel": 51}
    clips["noface.000.mp4"] = {"split": "train", "status": "no_face"}
    clips["nolabel.000.mp4"] = {"split": "train", "labels": None}
    return make_cache(tmp_path, clips)


def test_split_entries_keep_only_prepared_labelled_clips_of_the_split(cache):
    names = [e.name for e in I.split_entries(cache, "train")]
    assert names == [f"c{i}.000.mp4" for i in range(6)]
    assert sorted(e.name for e in I.split_entries(cache, "test")) == ["grey.000.mp4", "white.000.mp4"]
    with pytest.raises(ValueError, match="split"):
        I.split_entries(cache, "dev")


def test_batches_have_the_documented_shapes_and_dtypes(cache):
    ds, source = I.make_dataset(cache, "train", length=8, batch_size=4)
    batches = list(ds.as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [4, 2]
    x, y = batches[0]
    assert set(x) == {"faces", "mask"}
    assert x["faces"].shape == (4, 8, SIZE, SIZE, 1) and x["faces"].dtype == np.float32
    assert x["mask"].shape == (4, 8) and x["mask"].dtype == bool
    assert y.shape == (4, 5) and y.dtype == np.float32
    assert source.skipped == {}


def test_targets_follow_traits_order(cache):
    ds, _ = I.make_dataset(cache, "train", length=8, batch_size=8)
    _, y = next(ds.as_numpy_iterator())
    # c2: value 0.2, trait k gets 0.2 + 0.01 k, whatever the key order in the manifest
    np.testing.assert_allclose(y[2], [0.2 + 0.01 * k for k in range(5)], atol=1e-6)


def test_pixels_scaled_to_unit_range(cache):
    data = split_arrays(cache, "test", length=8)
    assert data["names"] == ["grey.000.mp4", "white.000.mp4"]
    faces = data["faces"]
    np.testing.assert_allclose(faces[0, :6], 0.2, atol=1e-6)  # 51 / 255
    np.testing.assert_allclose(faces[1, :6], 1.0)
    assert faces[:, 6:].max() == 0.0  # zero padding after the 6 real frames
    assert faces.min() >= 0.0 and faces.max() <= 1.0


def test_mask_combines_usable_and_padding_at_the_end(cache):
    data = split_arrays(cache, "validation", length=8)
    assert data["names"] == ["long.000.mp4", "short.000.mp4"]
    short_mask = data["mask"][1]
    assert short_mask.tolist() == [True, True, True, True, False, False, False, False]
    # frame order kept, the unusable frame 4 left out, zero padding at the end (frame i has pixel 10 i + 5)
    short = data["faces"][1, :, 0, 0, 0] * 255
    np.testing.assert_allclose(short, [5, 15, 25, 35, 0, 0, 0, 0], atol=1e-3)
    # a 12-frame clip, zero_pad: the first 8 frames, all real
    assert data["mask"][0].all()
    np.testing.assert_allclose(data["faces"][0, :, 0, 0, 0] * 255, [5 + 10 * i for i in range(8)], atol=1e-3)


def test_uniform_padding_spreads_frames_over_a_long_clip(cache):
    data = split_arrays(cache, "validation", length=4, padding="uniform")
    pixels = np.round(data["faces"][0, :, 0, 0, 0] * 255).astype(int)
    assert pixels.tolist() == [15, 45, 75, 105]  # frames 1, 4, 7, 10 of 12


def test_to_model_input_rejects_mismatched_usable():
    with pytest.raises(ValueError, match="usable"):
        I.to_model_input(np.zeros((4, 8, 8), np.uint8), np.ones(3, bool), 4)


def test_mask_comes_from_usable_not_found(tmp_path):
    """A face missed by the detector on frames 1-2 and 4 but interpolated there is fed as a face."""
    found = [True, False, False, True, False, True]
    cache = make_cache(tmp_path, {"bridged.000.mp4": {"found": found, "usable": [True] * 6},
                                  "detected.000.mp4": {"found": found}})
    data = split_arrays(cache, "train", length=6)
    assert data["names"] == ["bridged.000.mp4", "detected.000.mp4"]
    assert data["mask"][0].all()
    # usable only where found: frames 0, 3 and 5, packed to the front in order
    assert data["mask"][1].tolist() == [True] * 3 + [False] * 3
    np.testing.assert_allclose(data["faces"][1, :, 0, 0, 0] * 255, [5, 35, 55, 0, 0, 0], atol=1e-3)
    ds, _ = I.make_dataset(cache, "train", length=8, batch_size=2)
    x, _ = next(ds.as_numpy_iterator())
    assert x["mask"][0].tolist() == [True] * 6 + [False] * 2


def _order(ds):
    return [round(float(v), 4) for _, y in ds.as_numpy_iterator() for v in y[:, 0]]


def test_seeded_shuffle_is_deterministic_and_changes_each_epoch(cache):
    ds_a, _ = I.make_dataset(cache, "train", length=4, batch_size=2, shuffle=True, seed=7)
    ds_b, _ = I.make_dataset(cache, "train", length=4, batch_size=2, shuffle=True, seed=7)
    ds_c, _ = I.make_dataset(cache, "train", length=4, batch_size=2, shuffle=True, seed=8)
    epochs_a = [_order(ds_a) for _ in range(3)]
    epochs_b = [_order(ds_b) for _ in range(3)]
    assert epochs_a == epochs_b
    assert sorted(epochs_a[0]) == [round(0.1 * i, 4) for i in range(6)]  # a permutation
    assert len({tuple(e) for e in epochs_a}) > 1  # a new order each epoch
    assert _order(ds_c) != epochs_a[0] or _order(ds_c) != epochs_a[1]
    ds_plain, _ = I.make_dataset(cache, "train", length=4, batch_size=2)
    assert _order(ds_plain) == [round(0.1 * i, 4) for i in range(6)]


def test_corrupted_file_is_skipped_and_named(cache, caplog):
    bad = clip_cache_path(cache, "c3.000.mp4")
    bad.write_bytes(b"this is not an npz file")
    ds, source = I.make_dataset(cache, "train", length=4, batch_size=4)
    with caplog.at_level(logging.WARNING, logger="helpers.inputs"):
        values = _order(ds)
    assert values == [round(0.1 * i, 4) for i in (0, 1, 2, 4, 5)]  # c3 never fed
    assert list(source.skipped) == ["c3.000.mp4"]
    assert str(bad) in source.skipped["c3.000.mp4"]
    assert "c3.000.mp4" in caplog.text and str(bad) in caplog.text
    assert [e.name for e in source.usable] == [f"c{i}.000.mp4" for i in (0, 1, 2, 4, 5)]
    data = split_arrays(cache, "train", length=4)
    assert "c3.000.mp4" not in data["names"] and list(data["skipped"]) == ["c3.000.mp4"]
    assert len(data["y"]) == 5


def test_wrong_face_size_is_skipped(tmp_path):
    cache = make_cache(tmp_path, {"a.000.mp4": {}, "b.000.mp4": {}})
    save_clip_cache(clip_cache_path(cache, "b.000.mp4"), np.zeros((3, 32, 32), np.uint8),
                    np.ones(3, bool), np.ones(3, bool), np.zeros((3, 4)), np.arange(3), 25.0)
    data = split_arrays(cache, "train", length=4)
    assert data["names"] == ["a.000.mp4"] and "32px" in data["skipped"]["b.000.mp4"]


def test_empty_split_raises(tmp_path):
    cache = make_cache(tmp_path, {"a.000.mp4": {"split": "test"}})
    with pytest.raises(ValueError, match="no prepared"):
        I.make_dataset(cache, "train", length=4)


def test_split_assignment_is_stable_whatever_the_prepare_status():
    """By video: a clip's split depends on the labelled clips and the seed, not on which clips prepared."""
    labels = {t: 0.5 for t in TRAITS}
    clips = {f"v{i % 7}.{i // 7:03d}.mp4": {"split": ("train", "validation", "test")[i % 5 // 3 + (i % 5 == 4)],
                                            "status": "prepared", "file": "x", "labels": labels} for i in range(30)}
    clips["nolabel.000.mp4"] = {"split": "train", "status": "prepared", "file": "x", "labels": None}
    manifest = {"clips": clips}
    official = I.split_assignment(manifest)
    assert official == {n: c["split"] for n, c in clips.items() if c["labels"]}
    by_video = I.split_assignment(manifest, "by-video", split_seed=4)
    assert set(by_video) == set(official)
    video_split = {}
    for name, split in by_video.items():
        assert video_split.setdefault(name.split(".")[0], split) == split  # no video in two splits
    failed = {n: dict(c, status="no_face", file=None) if n.startswith("v3.") else c for n, c in clips.items()}
    assert I.split_assignment({"clips": failed}, "by-video", split_seed=4) == by_video
    assert I.split_assignment(manifest, "by-video", split_seed=5) != by_video
    # split_entries follows the assignment; a clip the assignment does not name is in no split.
    entries_test = {n for n, s in by_video.items() if s == "test"}
    root = Path("/nonexistent")
    assert {e.name for e in I.split_entries(root, "test", manifest, by_video)} == entries_test
    assert I.split_entries(root, "test", manifest, {}) == []


# ----------------------------------------------------------------------------- packed masks (cuDNN on a GPU)


@settings(max_examples=200, deadline=None)
@given(usable=st.lists(st.booleans(), min_size=1, max_size=40).filter(any),
       length=st.integers(1, 48), padding=st.sampled_from(["zero_pad", "truncate", "uniform", "loop"]))
def test_every_mask_is_right_padded_with_a_true_and_keeps_the_usable_frames_in_order(usable, length, padding):
    n = len(usable)
    faces = (np.arange(n, dtype=np.uint8)[:, None, None] + np.zeros((n, 2, 2), np.uint8))
    x, mask = I.to_model_input(faces, np.array(usable), length, padding)
    assert mask.shape == (length,) and I.right_padded(mask)
    shown = np.round(x[mask, 0, 0, 0] * 255).astype(int).tolist()  # which frame each real position holds
    kept = [i for i, u in enumerate(usable) if u]
    assert set(shown) <= set(kept)  # never a frame without a usable face
    if padding != "loop":
        assert shown == sorted(shown) and len(set(shown)) == len(shown)  # in order, each once
    if len(kept) <= length:
        assert set(shown) == set(kept)  # nothing usable is dropped when there is room
    assert not x[~mask].any()  # padding is zeros


def test_right_padded_says_which_masks_cudnn_takes():
    assert I.right_padded(np.array([[True, True, False], [True, False, False]]))
    assert not I.right_padded(np.array([True, False, True]))  # a gap mid-clip
    assert not I.right_padded(np.array([False, True, True]))  # padding at the start
    assert not I.right_padded(np.array([False, False]))  # no frame at all


def test_clip_without_a_usable_frame_never_reaches_the_model(tmp_path, caplog):
    with pytest.raises(I.NoUsableFrameError, match="none of the clip's 4 frames"):
        I.to_model_input(np.zeros((4, 8, 8), np.uint8), np.zeros(4, bool), 4)
    cache = make_cache(tmp_path, {"a.000.mp4": {}, "b.000.mp4": {"found": [False] * 6}})  # edited: prepared, 0 usable
    with caplog.at_level(logging.WARNING, logger="helpers.inputs"):
        data = split_arrays(cache, "train", length=4)
    assert data["names"] == ["a.000.mp4"] and "no usable face frame" in data["skipped"]["b.000.mp4"]
    assert str(clip_cache_path(cache, "b.000.mp4")) in caplog.text


def test_pipeline_masks_are_right_padded(cache):
    """What training, evaluation and explanation are fed: every mask as cuDNN needs it."""
    for split in ("train", "validation", "test"):
        for padding in ("zero_pad", "uniform", "loop"):
            ds, _ = I.make_dataset(cache, split, length=8, batch_size=3, padding=padding)
            for x, _ in ds.as_numpy_iterator():
                assert I.right_padded(x["mask"]), (split, padding, x["mask"])


def test_clip_names_without_a_video_id_are_refused_before_training():
    labels = {t: 0.5 for t in TRAITS}
    clips = {name: {"split": "train", "status": "prepared", "file": "x", "labels": labels}
             for name in ("ok.000.mp4", "holiday.mp4")}
    with pytest.raises(ValueError, match=r"1 clip name\(s\) of the cache /c .*'holiday.mp4'.*re-run prepare"):
        I.split_assignment({"clips": clips}, "official", cache_dir=Path("/c"))
