"""helpers.explain: the pure parts on small arrays, the run-folder checks on a hand-built model.

The model is built by hand (no training) so that its answers are known: every trait's
prediction is a multiple of the mean brightness of the masked frames, and extraversion
adds how much the brightness changes from one frame to the next (order-dependent).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import TRAITS
from helpers import explain as X
from helpers.atomic import write_json_atomic
from helpers.cache import MANIFEST_VERSION, clip_cache_path, save_clip_cache
from helpers.inputs import split_assignment
from helpers.runs import RUN_VERSION, SPLITS_FILE

SIZE, LENGTH = 16, 8
#: Prediction = MEAN_WEIGHTS * mean brightness + MOTION_WEIGHTS * mean |brightness change|.
MEAN_WEIGHTS = np.array([0.5, 1.0, 2.0, 3.0, 4.0])
MOTION_WEIGHTS = np.array([10.0, 0, 0, 0, 0])


# ----------------------------------------------------------------------------- pure helpers


def test_shuffle_keeps_padding_at_the_end_and_the_frames():
    rng = np.random.default_rng(0)
    clips, length = 20, 10
    n_real = rng.integers(1, length + 1, size=clips)
    real = np.arange(length)[None] < n_real[:, None]
    faces = np.where(real[..., None, None], rng.integers(1, 255, size=(clips, length, 3, 3)), 0).astype(np.uint8)
    mask = real & (rng.uniform(size=real.shape) > 0.3)
    new_faces, new_mask = X.shuffle_frames(faces, mask, real, rng)
    moved = 0
    for i in range(clips):
        n = n_real[i]
        assert not new_mask[i, n:].any() and not new_faces[i, n:].any()  # padding still at the end
        # The same frames, each with its own mask value: compare (frame bytes, mask) pairs as multisets.
        before = sorted((f.tobytes(), bool(m)) for f, m in zip(faces[i, :n], mask[i, :n]))
        after = sorted((f.tobytes(), bool(m)) for f, m in zip(new_faces[i, :n], new_mask[i, :n]))
        assert before == after
        moved += not np.array_equal(new_faces[i], faces[i])
    assert moved >= clips // 2  # it does shuffle


def test_shuffled_order_leaves_non_real_positions_alone():
    real = np.array([True, False, True, True, False, True])
    order = X.shuffled_order(real, np.random.default_rng(3))
    assert sorted(order.tolist()) == list(range(6))
    assert order[1] == 1 and order[4] == 4
    assert set(order[real].tolist()) == {0, 2, 3, 5}


def test_shuffle_frames_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must agree"):
        X.shuffle_frames(np.zeros((2, 4, 3)), np.ones((2, 5), bool), np.ones((2, 5), bool), np.random.default_rng())


def test_partial_correlation_of_a_hand_built_example():
    # Orthonormal directions: q[:, 0] along the intercept, then z (the control), u and v.
    n = 50
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), np.random.default_rng(1).normal(size=(n, 3))]))
    z, u, v = q[:, 1], q[:, 2], q[:, 3]
    x = 3 * z + u + 7
    y = -2 * z + u + v - 1
    # What z and the intercept do not explain: u in x, u + v in y, so the answer is 1/sqrt(2).
    assert X.partial_correlation(x, y, z[:, None]) == pytest.approx(1 / np.sqrt(2), abs=1e-12)
    # Controlling for nothing it is the plain Pearson correlation.
    assert X.partial_correlation(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    # A shared cause makes a strong plain correlation (24/26) that turns to -1 once it is controlled for.
    a, b = 5 * z + u, 5 * z - u
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(24 / 26)
    assert X.partial_correlation(a, b, z[:, None]) == pytest.approx(-1.0, abs=1e-12)


def test_partial_correlations_credit_each_factor_separately():
    rng = np.random.default_rng(0)
    n = 400
    common = rng.normal(size=n)
    factors = np.column_stack([common + 0.5 * rng.normal(size=n) for _ in range(3)])  # correlated factors
    values = factors[:, 1] + 0.1 * rng.normal(size=n)
    plain = [np.corrcoef(values, factors[:, j])[0, 1] for j in range(3)]
    assert min(plain) > 0.7  # every factor correlates with the values...
    partial = X.partial_correlations(values, factors)
    assert partial[1] > 0.95 and abs(partial[0]) < 0.2 and abs(partial[2]) < 0.2  # ...only one sets them


def test_partial_correlation_needs_enough_values():
    with pytest.raises(ValueError, match="at least"):
        X.partial_correlation(np.arange(4.0), np.arange(4.0), np.ones((4, 2)))
    assert np.isnan(X.partial_correlation(np.ones(10), np.arange(10.0)))


def test_patch_positions_cover_every_pixel():
    assert X.patch_positions(16, 4, 2) == [0, 2, 4, 6, 8, 10, 12]
    assert X.patch_positions(10, 4, 4) == [0, 4, 6]
    with pytest.raises(ValueError):
        X.patch_positions(8, 9, 1)


# ----------------------------------------------------------------------------- a hand-built run


def build_known_model():
    """Per frame its mean brightness z; per clip the masked means of z and |z_t - z_(t-1)|; fixed weights."""
    import keras
    from keras import layers

    from helpers.models import FoldFrames, FrameMotion, UnfoldFrames, model_inputs

    faces, mask = model_inputs(LENGTH, SIZE)
    z = layers.GlobalAveragePooling2D(name="brightness")(FoldFrames(name="fold")(faces))
    z = UnfoldFrames(LENGTH, name="unfold")(z)
    both = FrameMotion(name="motion")(z, mask)
    summary = layers.GlobalAveragePooling1D(name="masked_mean")(both, mask=mask)
    out = layers.Dense(len(TRAITS), name="traits")(summary)
    model = keras.Model({"faces": faces, "mask": mask}, out)
    model.get_layer("traits").set_weights([np.stack([MEAN_WEIGHTS, MOTION_WEIGHTS]).astype(np.float32),
                                           np.zeros(len(TRAITS), np.float32)])
    return model


def make_known_data(root: Path, n_per_split=(6, 2, 16), seed=0) -> tuple[Path, Path]:
    """A cache whose clips brighten frame by frame from a level set by neuroticism, and its demo factors."""
    from helpers.demo import factors_from_scores

    rng = np.random.default_rng(seed)
    cache, demo = root / "cache", root / "demo"
    clips, planted = {}, []
    for split, count in zip(("train", "validation", "test"), n_per_split):
        for i in range(count):
            name = f"{split[:2]}{i:02d}.000.mp4"
            n = int(rng.integers(4, LENGTH + 3))  # some clips padded, some cut
            scores = {t: float(rng.uniform(0.05, 0.95)) for t in TRAITS}
            level = 40 + 150 * scores["neuroticism"] + rng.normal(0, 8)
            ramp = level + 4 * np.arange(n)
            faces = np.clip(np.broadcast_to(ramp[:, None, None], (n, SIZE, SIZE)), 0, 255).astype(np.uint8)
            found = rng.uniform(size=n) > 0.15
            found[0] = True
            usable = found | (rng.uniform(size=n) > 0.5)  # some misses bridged
            path = clip_cache_path(cache, name)
            save_clip_cache(path, faces, found, usable, np.zeros((n, 4)), np.arange(n), 25.0)
            labels = {t: float(rng.uniform(0.3, 0.7)) for t in TRAITS}
            labels["extraversion"] = 0.0
            clips[name] = {"split": split, "status": "prepared", "file": str(path.relative_to(cache)),
                           "labels": labels, "n_frames": n, "n_found": int(found.sum()),
                           "n_usable": int(usable.sum()), "fps": 25.0, "error": None, "warning": None}
            planted.append({"name": name, "split": split, "scores": scores, "factors": factors_from_scores(scores)})
    write_json_atomic(cache / "manifest.json", {"version": MANIFEST_VERSION, "complete": True,
                                                "settings": {"num_frames": LENGTH, "size": SIZE}, "clips": clips})
    demo.mkdir(parents=True)
    (demo / "demo_factors.json").write_text(json.dumps({"clips": planted}))
    return cache, demo


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    cache, demo = make_known_data(root)
    run = root / "run"
    run.mkdir()
    build_known_model().save(run / "model.keras")
    write_json_atomic(run / "metrics.json", {"version": RUN_VERSION, "model": "known", "split_scheme": "official",
                                             "split_seed": 0, "settings": {
        "length": LENGTH, "size": SIZE, "num_frames": LENGTH, "padding": "zero_pad", "traits": list(TRAITS),
        "detector": None}})
    write_json_atomic(run / SPLITS_FILE, {"split_scheme": "official", "split_seed": 0,
                                          "clips": split_assignment(json.loads((cache / "manifest.json").read_text()))})
    return run, cache, demo


def test_explain_reads_the_run_through_its_one_reader(known, tmp_path):
    """The run's own splits (splits.json), via helpers.runs; an old-format folder is refused, not guessed at."""
    from helpers.runs import RunFolderError, read_run

    run, cache, _ = known
    test = sorted(c for c, s in read_run(run).assignment.items() if s == "test")
    assert X.predict_split(run, cache, "test")["names"] == test
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.keras").write_bytes((run / "model.keras").read_bytes())
    write_json_atomic(old / "metrics.json", {"settings": {"frames": 32, "size": 48, "sequence_strategy": "uniform"}})
    with pytest.raises(RunFolderError, match=f"{old} was trained by another version"):
        X.predict_split(old, cache, "test")
    with pytest.raises(RunFolderError, match="not a run folder|not found"):
        X.load_split_inputs(tmp_path / "nothing", cache)


def test_split_inputs_are_packed_and_follow_the_run(known):
    from helpers.inputs import right_padded

    run, cache, _ = known
    inputs = X.load_split_inputs(run, cache, "test", limit=5)
    assert len(inputs["names"]) == 5 and inputs["faces"].shape == (5, LENGTH, SIZE, SIZE, 1)
    assert right_padded(inputs["mask"])  # what cuDNN needs on a GPU


def test_predictions_match_the_training_pipeline(known):
    from helpers.training import evaluate

    run, cache, _ = known
    mine = X.predict_split(run, cache, "test")
    theirs = evaluate(run, cache, "test")
    assert mine["names"] == theirs["names"]
    np.testing.assert_allclose(mine["y_pred"], theirs["y_pred"], atol=1e-6)
    np.testing.assert_allclose(mine["y_true"], theirs["y_true"], atol=1e-6)


def test_frame_order_moves_only_the_motion_trait(known):
    run, cache, _ = known
    effect = X.frame_order_effect(run, cache, "test", repeats=2, seed=0)
    assert list(effect) == list(TRAITS)
    # In order, each frame is 4 grey levels brighter than the one before; shuffled, the
    # steps are larger, so the motion read-out (label 0) overshoots.
    assert effect["extraversion"] > 0.05
    for trait in TRAITS[1:]:
        assert abs(effect[trait]) < 1e-5  # the same frames with the same masks: the same mean
    assert X.frame_order_effect(run, cache, "test", repeats=2, seed=0) == effect  # seeded


def test_occlusion_maps_show_where_the_prediction_looks(known):
    run, _, _ = known
    faces = np.full((3, LENGTH, SIZE, SIZE, 1), 0.5, np.float32)
    faces[:, :, :, SIZE // 2:] = 1.0  # left half already the patch's grey: hiding it changes nothing
    mask = np.ones((3, LENGTH), bool)
    mask[0, 5:] = False
    maps = X.occlusion_maps(run, faces, mask, patch=4, stride=2)
    assert maps.shape == (len(TRAITS), SIZE, SIZE) and (maps >= 0).all()
    assert np.abs(maps[:, :, :6]).max() < 1e-6  # covered only by patches inside the left half
    assert (maps[:, :, SIZE // 2:] > 1e-3).all()
    # The corner pixel is covered by one patch: 16 pixels from 1.0 to 0.5 in a 256-pixel frame.
    assert maps[1, 0, -1] == pytest.approx(16 * 0.5 / SIZE**2, rel=1e-4)
    for k in range(len(TRAITS)):  # each trait is a multiple of the brightness (frames do not change)
        np.testing.assert_allclose(maps[k], MEAN_WEIGHTS[k] * maps[1], atol=1e-6)


def test_occlusion_maps_reject_wrong_shapes(known):
    run, _, _ = known
    with pytest.raises(ValueError, match="expected faces"):
        X.occlusion_maps(run, np.zeros((2, LENGTH, SIZE, SIZE)), np.ones((2, LENGTH), bool))


def test_factor_probe_finds_the_planted_factor(known):
    run, cache, demo = known
    probe = X.factor_probe(run, cache, demo, "test")
    assert list(probe) == list(TRAITS)
    for trait, row in probe.items():
        assert list(row) == list(TRAITS)
        assert all(-1 <= v <= 1 for v in row.values())
        assert max(row, key=row.get) == "neuroticism"  # every output here is read from brightness
        assert row["neuroticism"] > 0.9
    # The same numbers as computing it by hand from the predictions and demo_factors.json.
    p = X.predict_split(run, cache, "test")
    factors = X.planted_scores(demo, p["names"])
    np.testing.assert_allclose([probe["agreeableness"][t] for t in TRAITS],
                               X.partial_correlations(p["y_pred"][:, 2], factors), atol=1e-9)


def test_planted_scores_name_missing_clips(known):
    _, _, demo = known
    with pytest.raises(ValueError, match="not in .*demo_factors.json"):
        X.planted_scores(demo, ["nope.000.mp4"])


# ----------------------------------------------------------------------------- error analysis (notebook 06)


def _write_cache_file(path: Path, found, usable, boxes) -> None:
    """One clip file in the cache's format (an .npz of named arrays), whatever the signature of save_clip_cache."""
    n = len(found)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, faces=np.zeros((n, SIZE, SIZE), np.uint8), found=np.asarray(found, bool),
             usable=np.asarray(usable, bool), boxes=np.asarray(boxes, np.float32), frame_indices=np.arange(n),
             fps=np.float64(30.0))


def test_clip_face_stats_counts_frames_and_the_face_width(tmp_path):
    from helpers.cache import CACHE_ARRAYS

    found = np.array([True, False, True, True, False])
    usable = np.array([True, True, True, True, False])  # the miss between two detections is bridged
    boxes = np.array([[0, 0, 80, 90], [0, 0, 85, 95], [0, 0, 90, 99], [0, 0, 100, 110], [0, 0, 500, 500]])
    _write_cache_file(clip_cache_path(tmp_path, "a.000.mp4"), found, usable, boxes)
    _write_cache_file(clip_cache_path(tmp_path, "b.001.mp4"), [False, False], [False, False], np.zeros((2, 4)))
    stats = X.clip_face_stats(tmp_path, ["a.000.mp4", "b.001.mp4"])
    assert stats["sampled_frames"].tolist() == [5, 2]
    assert stats["found_frames"].tolist() == [3, 0]
    # A cache that stores ``usable`` is read; one that does not falls back on ``found``.
    assert stats["usable_frames"].tolist() == ([4, 0] if "usable" in CACHE_ARRAYS else [3, 0])
    assert stats["face_width_px"][0] == 90.0  # the median of the found boxes; the misses are left out
    assert np.isnan(stats["face_width_px"][1])


def test_demo_clip_conditions_read_the_planted_nuisance(tmp_path):
    scores = {t: 0.5 for t in TRAITS}
    labels = dict(scores, neuroticism=0.53)
    clips = [{"name": "a.000.mp4", "n_frames": 100, "face_width": 80.0, "absent": [10, 35], "scores": scores,
              "labels": labels},
             {"name": "b.000.mp4", "n_frames": 40, "face_width": 95.5, "absent": None, "scores": scores,
              "labels": scores}]
    (tmp_path / "demo_factors.json").write_text(json.dumps({"clips": clips}))
    cond = X.demo_clip_conditions(tmp_path, ["b.000.mp4", "a.000.mp4"])  # in the order asked for
    assert cond["clip_frames"].tolist() == [40, 100]
    assert cond["face_width_px"].tolist() == [95.5, 80.0]
    assert cond["absent_share"].tolist() == [0.0, 0.25]
    np.testing.assert_allclose(cond["label_noise"][1], [0, 0.03, 0, 0, 0], atol=1e-12)
    assert not cond["label_noise"][0].any()
    with pytest.raises(ValueError, match="not in .*demo_factors.json"):
        X.demo_clip_conditions(tmp_path, ["c.000.mp4"])


def test_error_correlations_per_trait_and_nan_for_a_constant_column():
    rng = np.random.default_rng(0)
    n = 200
    width = rng.uniform(70, 110, n)
    errors = np.column_stack([0.2 - 0.001 * width + 0.001 * rng.normal(size=n), rng.uniform(size=n)])
    r = X.error_correlations(errors, {"width": width, "all faces": np.full(n, 32)})
    assert r["width"][0] < -0.9 and abs(r["width"][1]) < 0.2
    np.testing.assert_allclose(r["width"][1], np.corrcoef(width, errors[:, 1])[0, 1], atol=1e-12)
    assert np.isnan(r["all faces"]).all()
    with pytest.raises(ValueError, match="3 values for 200 clips"):
        X.error_correlations(errors, {"short": np.ones(3)})


def test_binned_mean_errors_by_thirds_of_each_column():
    values = np.array([[5.0, 0], [1, 1], [3, 2], [2, 3], [4, 4], [0, 5]])
    errors = np.array([[50.0, 1], [10, 2], [30, 3], [20, 4], [40, 5], [0, 6]])
    out = X.binned_mean_errors(values, errors, bins=3)
    # Column 0 sorted by value: errors 0, 10 | 20, 30 | 40, 50; column 1: 1, 2 | 3, 4 | 5, 6.
    np.testing.assert_allclose(out, [[5, 25, 45], [1.5, 3.5, 5.5]])
    assert X.binned_mean_errors(values, errors, bins=1)[:, 0].tolist() == [25.0, 3.5]
    with pytest.raises(ValueError, match="bins"):
        X.binned_mean_errors(values, errors, bins=7)
    with pytest.raises(ValueError, match="must both be"):
        X.binned_mean_errors(values[:, 0], errors[:, 0])
