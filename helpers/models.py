"""The models: the article's CNN+LSTM (head fixed), a light default, and a per-frame baseline.

Every model takes two named inputs and returns the five trait scores:

- ``faces``: float32 ``[batch, length, size, size, 1]`` in [0, 1];
- ``mask``: bool ``[batch, length]``, True for real frames with a detected face;
- output ``traits``: ``[batch, 5]`` in [0, 1] (sigmoid), in ``helpers.TRAITS`` order.

The recurrent layer gets the mask (``layer(x, mask=mask)``), so masked positions, e.g.
the zero padding at the end of a short clip, change nothing: the state is carried
over them unchanged. The input pipeline (``helpers.inputs.to_model_input``) packs the
usable frames to the front, so every mask it yields is right-padded with at least one
True: on a GPU, Keras' LSTM and GRU take the cuDNN kernel, which accepts no other mask
(it stops training at the first mask False mid-clip). A caller who builds inputs by
hand must pack them the same way to run on a GPU (``helpers.inputs.right_padded`` checks). The per-frame CNN is applied to all ``batch * length`` crops at
once: ``FoldFrames`` folds time into the batch axis and ``UnfoldFrames`` restores it
(the article used ``TimeDistributed`` for the same result; one folded call is faster).

``build_article_model`` is the architecture of the article the series revisits, with
its output head fixed to what the task needs: five sigmoid units (the scores lie in
[0, 1]) trained with MAE (the challenge metric is 1 - MAE). ``build_light_model`` is the
default: about 300 times fewer weights (77 k against 23.2 M), sized to train in a minute
or less on two CPU cores; it keeps the article's LSTM, small (64 units, on 32 values per
frame), and adds a motion cue (``FrameMotion``), a masked mean over time beside the LSTM,
and clip mirroring (``ClipFlip``, training only). ``build_per_frame_model`` sees the same per-frame
features as the light model but averages them over time (masked), so it cannot tell the
order of frames: it is the comparison that shows what temporal modelling adds.

``MODELS`` is the one registry of model names (training, the command line and the
tests read it); each builder's ``learning_rate`` default is that model's learning rate
(``default_learning_rate``).

Models are saved as ``.keras`` files; the custom layers here are registered,
so ``load_model(path)`` (or ``keras.saving.load_model``) restores them once this module
is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers, ops

from helpers import TRAITS

@keras.saving.register_keras_serializable(package="helpers")
class FoldFrames(layers.Layer):
    """``[batch, length, ...]`` -> ``[batch * length, ...]``: every frame becomes a batch row."""

    def call(self, x):
        return ops.reshape(x, (-1,) + tuple(x.shape[2:]))

    def compute_output_shape(self, input_shape):
        b, t = input_shape[0], input_shape[1]
        return ((None if b is None or t is None else b * t),) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="helpers")
class UnfoldFrames(layers.Layer):
    """``[batch * length, ...]`` -> ``[batch, length, ...]``, the inverse of ``FoldFrames``."""

    def __init__(self, length: int, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)

    def call(self, x):
        return ops.reshape(x, (-1, self.length) + tuple(x.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (None, self.length) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "length": self.length}


def model_inputs(length: int, size: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The two named inputs every model takes: ``faces`` and ``mask``."""
    faces = keras.Input((length, size, size, 1), name="faces")
    mask = keras.Input((length,), dtype="bool", name="mask")
    return faces, mask


def trait_head(x) -> keras.KerasTensor:
    """The fixed head: five sigmoid scores in [0, 1], named ``traits``."""
    return layers.Dense(len(TRAITS), activation="sigmoid", name="traits")(x)


def _compile(model: keras.Model, learning_rate: float, loss: str, jit_compile: bool | str = "auto") -> keras.Model:
    # "mae" is always a metric, so that history and early stopping speak the challenge's measure.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss,
                  metrics=["mae"], jit_compile=jit_compile)
    return model


def build_article_model(length: int = 32, size: int = 48, *, filters: int = 50, kernel: int = 8,
                        lstm_units: int = 200, dropout: float = 0.2, learning_rate: float = 1e-4,
                        loss: str = "mae", jit_compile: bool | str = "auto", compile: bool = True) -> keras.Model:
    """The article's CNN+LSTM with its head fixed (Dense(5, sigmoid), MAE).

    Per frame: Conv2D(50, 8x8, same, relu) -> MaxPool 2x2 -> SpatialDropout2D(0.2) ->
    BatchNorm -> Flatten (24*24*50 = 28,800 values); then LSTM(200, dropout 0.2,
    recurrent dropout 0.2) over the masked sequence, then the head. About 23.2 M
    weights at 48x48, nearly all in the LSTM's input matrix. Adam with ``learning_rate``
    (Keras 3: no ``lr=`` or ``decay=``; pass a ``keras.optimizers.schedules`` object for decay).
    """
    faces, mask = model_inputs(length, size)
    x = FoldFrames(name="fold")(faces)
    x = layers.Conv2D(filters, kernel, padding="same", activation="relu", name="conv")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.SpatialDropout2D(dropout, name="spatial_dropout")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Flatten(name="flatten")(x)
    x = UnfoldFrames(length, name="unfold")(x)
    x = layers.LSTM(lstm_units, dropout=dropout, recurrent_dropout=dropout, name="lstm")(x, mask=mask)
    model = keras.Model({"faces": faces, "mask": mask}, trait_head(x), name="article")
    return _compile(model, learning_rate, loss, jit_compile) if compile else model


@keras.saving.register_keras_serializable(package="helpers")
class ClipFlip(layers.Layer):
    """Training-time augmentation: mirror whole clips left-right, each with probability 1/2.

    Every frame of a clip gets the same flip, so motion is kept; at inference it does
    nothing. Mirroring changes none of the demo data's five factors (a head roll
    mirrored is a head roll of the same frequency), and on real clips it is the usual
    face augmentation.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        flip = keras.random.uniform((ops.shape(x)[0],), seed=self.generator) < 0.5
        return ops.where(ops.reshape(flip, (-1,) + (1,) * (len(x.shape) - 1)), ops.flip(x, axis=3), x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="helpers")
class FrameMotion(layers.Layer):
    """``[batch, length, features]`` + mask -> ``[z_t, |z_t - z_(t-1)|]`` per frame.

    The second half is how much each per-frame feature changed since the previous
    frame: a motion cue the recurrent layer can sum over time, where it would otherwise
    have to learn to subtract. It is 0 unless both frames are real (mask True), so
    padding and frames without a face never leak into it. Order-dependent by design.

    With packed input (``helpers.inputs.to_model_input``) the frames either side of a
    gap in the usable frames are neighbours, so one difference per gap spans it: a
    larger step, once per gap, beside the clip's own steps (on the demo cache 171 of 6157
    sampled frames, 2.8 %, are not usable: the gaps are few). Accepted for cuDNN; the
    series' figures are re-measured with it.
    """

    def call(self, z, mask):
        m = ops.cast(mask, z.dtype)
        prev = ops.concatenate([ops.zeros_like(z[:, :1]), z[:, :-1]], axis=1)
        prev_m = ops.concatenate([ops.zeros_like(m[:, :1]), m[:, :-1]], axis=1)
        both = ops.expand_dims(m * prev_m, -1)
        return ops.concatenate([z, ops.abs(z - prev) * both], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2 * input_shape[-1],)


def frame_encoder(size: int = 48, widths: tuple[int, ...] = (8, 16, 32), features: int = 32,
                  name: str = "frame_encoder") -> keras.Sequential:
    """A small CNN from one ``size`` x ``size`` x 1 crop (values in [0, 1]) to ``features`` values.

    Pixels are first centred (``[0, 1] -> [-2, 2]``); then one strided conv per entry of
    ``widths`` (5x5 then 3x3, stride 2: 48 -> 24 -> 12 -> 6 pixels), flatten and a
    dense layer. Strides instead of pooling cut the cost about 3x at equal accuracy on
    the demo data; flatten + dense (not global pooling) keeps *where* things are in the
    crop, which is what a head's motion changes.
    """
    stack: list[layers.Layer] = [keras.Input((size, size, 1)), layers.Rescaling(4.0, offset=-2.0, name="centre")]
    for i, w in enumerate(widths):
        stack.append(layers.Conv2D(w, 5 if i == 0 else 3, strides=2, padding="same", activation="relu",
                                   name=f"conv{i}"))
    stack += [layers.Flatten(name="flatten"), layers.Dense(features, activation="relu", name="embed")]
    return keras.Sequential(stack, name=name)


#: The recurrent layers ``build_light_model`` can use, by name.
RECURRENT_LAYERS: dict[str, type[layers.Layer]] = {"lstm": layers.LSTM, "gru": layers.GRU}


def build_light_model(length: int = 32, size: int = 48, *, widths: tuple[int, ...] = (8, 16, 32),
                      features: int = 32, units: int = 64, motion: bool = True, pooled: bool = True,
                      augment: bool = True, recurrent: str = "lstm", learning_rate: float = 3e-3, loss: str = "mse",
                      jit_compile: bool | str = "auto", compile: bool = True) -> keras.Model:
    """The default model: per-frame CNN, motion cue, a masked LSTM beside a masked mean, the head.

    ``frame_encoder`` turns each crop into ``features`` values ``z_t``; ``FrameMotion``
    appends ``|z_t - z_(t-1)|``; an LSTM of ``units`` reads that sequence (masked) while
    a masked mean over time summarises it; both go to the five sigmoid outputs.
    The mean (``pooled``) carries what is constant over a clip, so the LSTM's state is
    free for what changes over time. ``augment`` adds ``ClipFlip`` (training only).
    ``recurrent``: ``"lstm"`` (default, the article's kind of layer) or ``"gru"`` (same
    ``units``, a quarter fewer recurrent weights; the layer is then named ``gru``).
    About 77 k weights at the defaults.

    The LSTM, its 64 units and MSE as the loss (the reported metric stays MAE, 1 - MAE
    being the challenge score) were chosen on the validation split: on the demo data, by
    video, seeds 0-2, median validation MAE 0.0362 against 0.0482 for a GRU of 64 units,
    0.0448 with MAE as the loss, 0.0367 with 32 units, too close to call
    (``benchmarks/bench_recurrent.py``). Notebook 05 writes this model out layer by layer;
    ``tests/test_training.py`` holds the two equal.
    """
    faces, mask = model_inputs(length, size)
    x = ClipFlip(name="flip")(faces) if augment else faces
    x = FoldFrames(name="fold")(x)
    x = frame_encoder(size, widths, features)(x)
    x = UnfoldFrames(length, name="unfold")(x)
    if motion:
        x = FrameMotion(name="motion")(x, mask)
    if recurrent not in RECURRENT_LAYERS:
        raise ValueError(f"recurrent={recurrent!r}: choose one of {', '.join(RECURRENT_LAYERS)}")
    h = RECURRENT_LAYERS[recurrent](units, name=recurrent)(x, mask=mask)
    if pooled:
        h = layers.Concatenate(name="summary")([h, layers.GlobalAveragePooling1D(name="masked_mean")(x, mask=mask)])
    model = keras.Model({"faces": faces, "mask": mask}, trait_head(h), name="light")
    return _compile(model, learning_rate, loss, jit_compile) if compile else model


def build_per_frame_model(length: int = 32, size: int = 48, *, widths: tuple[int, ...] = (8, 16, 32),
                          features: int = 32, units: int = 32, augment: bool = True, learning_rate: float = 3e-3,
                          loss: str = "mse", jit_compile: bool | str = "auto", compile: bool = True) -> keras.Model:
    """The light model's frame encoder, averaged over the masked frames, then a dense layer and the head.

    Trained like the light model (same loss, augmentation, schedule). Order-blind by construction: shuffling the frames of a clip does not change its output.
    """
    faces, mask = model_inputs(length, size)
    x = ClipFlip(name="flip")(faces) if augment else faces
    x = FoldFrames(name="fold")(x)
    x = frame_encoder(size, widths, features)(x)
    x = UnfoldFrames(length, name="unfold")(x)
    x = layers.GlobalAveragePooling1D(name="masked_mean")(x, mask=mask)
    x = layers.Dense(units, activation="relu", name="dense")(x)
    model = keras.Model({"faces": faces, "mask": mask}, trait_head(x), name="per_frame")
    return _compile(model, learning_rate, loss, jit_compile) if compile else model


#: The one registry of models: name -> builder ``(length, size, **kwargs) -> compiled keras.Model``.
MODELS: dict[str, Callable[..., keras.Model]] = {
    "light": build_light_model,
    "article": build_article_model,
    "per_frame": build_per_frame_model,
}


def default_learning_rate(name: str) -> float:
    """The learning rate model ``name`` trains with unless told otherwise (its builder's default)."""
    return float(inspect.signature(_builder(name)).parameters["learning_rate"].default)


def _builder(name: str) -> Callable[..., keras.Model]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, length: int = 32, size: int = 48, **kwargs) -> keras.Model:
    """The model ``name`` of ``MODELS``, built for sequences of ``length`` crops of ``size`` pixels."""
    return _builder(name)(length, size, **kwargs)


class ModelFileError(ValueError):
    """A model file that is missing, truncated or not a model of these builders; the message names it."""


def load_model(path: str | Path, compile: bool = True) -> keras.Model:
    """Load a ``.keras`` model saved from one of the builders here (``safe_mode``: no code in the file runs).

    Anything wrong with the file (cut short, not a zip, a garbled or hostile ``config.json``)
    is a ``ModelFileError`` naming it; Keras' own message (for a damaged file it says "File
    not found") is kept short, in brackets.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} not found: re-run `python -m helpers train` to write it")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - whatever a damaged or crafted file makes Keras raise
        reason = " ".join(str(err).split())[:160]
        raise ModelFileError(f"model file {path} is damaged or not a model saved by helpers "
                             f"({type(err).__name__}: {reason}); re-run `python -m helpers train` to write it "
                             "again") from None
