"""helpers.models: shapes, output range, masking, order sensitivity, saving."""

import inspect

import numpy as np
import pytest

from helpers import models as Mo

T, S, B = 6, 48, 3


def _batch(seed=0, real=4):
    rng = np.random.default_rng(seed)
    faces = rng.uniform(size=(B, T, S, S, 1)).astype(np.float32)
    mask = np.zeros((B, T), bool)
    mask[:, :real] = True
    faces[:, real:] = 0.0
    return faces, mask


def _predict(model, faces, mask):
    return np.asarray(model.predict_on_batch({"faces": faces, "mask": mask}))


@pytest.fixture(scope="module")
def light():
    import keras

    keras.utils.set_random_seed(0)
    return Mo.build_light_model(T, S)


@pytest.fixture(scope="module")
def light_gru():
    import keras

    keras.utils.set_random_seed(0)
    return Mo.build_light_model(T, S, recurrent="gru")


@pytest.fixture(scope="module")
def per_frame():
    import keras

    keras.utils.set_random_seed(0)
    return Mo.build_per_frame_model(T, S)


@pytest.mark.parametrize("name", list(Mo.MODELS))
def test_output_shape_and_range(name):
    model = Mo.build_model(name, T, S, compile=False)
    assert [i.name for i in model.inputs] == ["faces", "mask"]
    faces, mask = _batch()
    out = _predict(model, faces * 50, mask)  # large inputs: the sigmoid must still bound them
    assert out.shape == (B, 5)
    assert np.all((out >= 0) & (out <= 1))


def test_article_model_size_and_head():
    model = Mo.build_article_model(T, S, compile=False)
    # the LSTM input matrix dominates: 4 * 200 * (24 * 24 * 50 + 200) + ...; independent of frames
    assert model.count_params() == pytest.approx(23.2e6, rel=0.01)
    # notebook 05 counts the article's stack by hand; the helpers version has the same weights
    flat = 24 * 24 * 50
    assert model.count_params() == 50 * (8 * 8 + 1) + 4 * 50 + 4 * (flat + 200 + 1) * 200 + 200 * 5 + 5
    head = model.get_layer("traits")
    assert head.units == 5 and head.activation.__name__ == "sigmoid"
    lstm = model.get_layer("lstm")
    assert lstm.units == 200 and lstm.dropout == pytest.approx(0.2) and lstm.recurrent_dropout == pytest.approx(0.2)
    conv = model.get_layer("conv")
    assert conv.filters == 50 and conv.kernel_size == (8, 8)


def test_compiled_losses_and_given_learning_rate():
    model = Mo.build_light_model(T, S, learning_rate=0.01)
    assert model.loss == "mse"  # measured better than "mae" on the demo data (see build_light_model)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    assert Mo.build_light_model(T, S, loss="mae").loss == "mae"
    assert Mo.build_article_model(T, S, learning_rate=1e-4).loss == "mae"


def test_light_model_is_much_smaller_than_the_article_model(light):
    assert light.count_params() * 100 < Mo.build_article_model(T, S, compile=False).count_params()


@pytest.mark.parametrize("fixture", ["light", "light_gru", "per_frame"])
def test_padding_content_is_ignored(fixture, request):
    model = request.getfixturevalue(fixture)
    faces, mask = _batch()
    base = _predict(model, faces, mask)
    altered = faces.copy()
    altered[:, 4:] = np.random.default_rng(1).uniform(size=altered[:, 4:].shape)
    np.testing.assert_allclose(_predict(model, altered, mask), base, atol=1e-6)
    # ...but the same change with the mask saying "real" does change the output
    assert np.abs(_predict(model, altered, np.ones_like(mask)) - base).max() > 1e-4
    # and a real frame's content matters
    changed = faces.copy()
    changed[:, 1] = 1.0 - changed[:, 1]
    assert np.abs(_predict(model, changed, mask) - base).max() > 1e-4


def test_light_model_ignores_masked_frames_in_the_middle(light):
    faces, mask = _batch()
    mask[:, 2] = False  # a frame without a detected face
    base = _predict(light, faces, mask)
    altered = faces.copy()
    altered[:, 2] = 1.0
    np.testing.assert_allclose(_predict(light, altered, mask), base, atol=1e-6)


def test_light_model_sees_frame_order_and_per_frame_model_does_not(light, per_frame):
    faces, mask = _batch(real=T)
    order = np.array([3, 0, 5, 1, 4, 2])
    shuffled = faces[:, order]
    assert np.abs(_predict(light, shuffled, mask) - _predict(light, faces, mask)).max() > 1e-5
    np.testing.assert_allclose(_predict(per_frame, shuffled, mask), _predict(per_frame, faces, mask), atol=1e-5)


def test_save_and_load_keras_file(light, tmp_path):
    path = tmp_path / "light.keras"
    light.save(path)
    loaded = Mo.load_model(path, compile=False)  # (an untrained optimizer has nothing to restore)
    faces, mask = _batch(seed=3)
    np.testing.assert_allclose(_predict(loaded, faces, mask), _predict(light, faces, mask), atol=1e-6)
    assert loaded.get_layer("unfold").length == T


def test_fold_unfold_round_trip():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    folded = np.asarray(Mo.FoldFrames()(x))
    assert folded.shape == (6, 4)
    np.testing.assert_array_equal(folded[4], x[1, 1])
    np.testing.assert_array_equal(np.asarray(Mo.UnfoldFrames(3)(folded)), x)


def test_clip_flip_mirrors_whole_clips_in_training_only():
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(size=(16, 3, 5, 5, 1)).astype(np.float32)
    layer = Mo.ClipFlip()
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    out = np.asarray(layer(x, training=True))
    same = [np.array_equal(out[i], x[i]) for i in range(16)]
    mirrored = [np.array_equal(out[i], x[i, :, :, ::-1]) for i in range(16)]
    assert all(a or b for a, b in zip(same, mirrored))  # every frame of a clip alike
    assert 0 < sum(mirrored) < 16


def test_frame_motion_hand_computed():
    z = np.array([[[1.0, 0.0], [3.0, 1.0], [2.0, 5.0], [9.0, 9.0]]], np.float32)
    mask = np.array([[True, True, False, True]])
    out = np.asarray(Mo.FrameMotion()(z, mask))
    np.testing.assert_array_equal(out[0, :, :2], z[0])
    # |z_t - z_(t-1)| where both frames are real; 0 at t = 0 and next to the masked frame
    np.testing.assert_array_equal(out[0, :, 2:], [[0, 0], [2, 1], [0, 0], [0, 0]])


def test_light_model_without_motion_or_augmentation_builds():
    model = Mo.build_light_model(T, S, motion=False, augment=False, compile=False)
    names = [layer.name for layer in model.layers]
    assert "motion" not in names and "flip" not in names
    assert "motion" in [layer.name for layer in Mo.build_light_model(T, S, compile=False).layers]


def test_light_model_gru_variant(light, light_gru):
    names = [layer.name for layer in light_gru.layers]
    assert "gru" in names and "lstm" not in names
    assert "lstm" in [layer.name for layer in light.layers]  # the default, as in the article
    assert light_gru.get_layer("gru").units == light.get_layer("lstm").units
    # an LSTM has 4 weight blocks where a GRU has 3 (same input and units)
    assert light.get_layer("lstm").count_params() > light_gru.get_layer("gru").count_params()
    with pytest.raises(ValueError, match="recurrent='rnn': choose one of lstm, gru"):
        Mo.build_light_model(T, S, recurrent="rnn", compile=False)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'huge'; choose one of light, article, per_frame"):
        Mo.build_model("huge")


def test_default_learning_rate_is_the_builders():
    assert {n: Mo.default_learning_rate(n) for n in Mo.MODELS} == {"light": 3e-3, "article": 1e-4, "per_frame": 3e-3}


def test_cli_model_choices_and_train_defaults_come_from_the_library():
    from helpers.__main__ import build_parser
    from helpers.training import train

    args = build_parser("train").parse_args(["train", "CACHE", "--out", "RUN"])
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()}
    assert args.model == defaults["model_name"] == "light"
    for name in ("length", "epochs", "batch_size", "seed", "padding", "distribution", "split_scheme", "split_seed"):
        assert getattr(args, name) == defaults[name], name
    for name in Mo.MODELS:
        assert build_parser("train").parse_args(["train", "C", "--out", "R", "--model", name]).model == name



# ----------------------------------------------------------------------------- packed masks (cuDNN on a GPU)


def _gappy_clips(seed: int = 0, n: int = 8, size: int = S):
    """uint8 crops of 3 clips and ``usable`` with gaps mid-clip (as when a person leaves the frame)."""
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, size=(3, n, size, size), dtype=np.uint8)
    usable = np.array([[1, 1, 0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 1, 1]], bool)
    return faces, usable


@pytest.mark.parametrize("recurrent", ["lstm", "gru"])
def test_masked_recurrent_layer_output_is_unchanged_by_packing(recurrent):
    """A sequence with masked gaps and the same usable steps packed to the front: one output."""
    import keras

    keras.utils.set_random_seed(1)
    layer = Mo.RECURRENT_LAYERS[recurrent](7)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 8, 5)).astype(np.float32)
    _, usable = _gappy_clips()
    packed = np.zeros_like(x)
    packed_mask = np.zeros_like(usable)
    for i in range(3):
        k = int(usable[i].sum())
        packed[i, :k], packed_mask[i, :k] = x[i][usable[i]], True
    np.testing.assert_allclose(np.asarray(layer(x, mask=usable)), np.asarray(layer(packed, mask=packed_mask)),
                               atol=1e-6)


def test_light_model_without_motion_is_unchanged_by_the_pipelines_packing():
    """Through ``to_model_input``: the model sees only the usable frames either way, in the same order.

    With ``motion`` on, one difference per gap spans it (the frames either side become
    neighbours): a deliberate change, documented in ``to_model_input`` and the README.
    """
    import keras

    from helpers.inputs import right_padded, to_model_input

    keras.utils.set_random_seed(0)
    model = Mo.build_light_model(8, S, motion=False, augment=False)
    faces, usable = _gappy_clips()
    gappy = (faces.astype(np.float32) / 255)[..., None]
    packed = [to_model_input(f, u, 8) for f, u in zip(faces, usable)]
    x, mask = np.stack([p[0] for p in packed]), np.stack([p[1] for p in packed])
    assert right_padded(mask) and not right_padded(usable)
    np.testing.assert_allclose(_predict(model, x, mask), _predict(model, gappy, usable), atol=1e-5)
