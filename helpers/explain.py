"""What did the model learn? Three checks of a trained run, each comparable with a known truth.

- ``frame_order_effect(run_dir, cache_dir)``: how much each trait's error grows when the
  real frames of every clip are shuffled (padding stays at the end, each frame keeps its
  mask). A trait read from motion must lose; a trait read from single frames must not.
- ``occlusion_maps(run_dir, faces, mask)``: where in the face crop each trait's prediction
  looks: the mean absolute change of the prediction when a grey patch hides one place
  in every frame.
- ``factor_probe(run_dir, cache_dir, demo_dir)``: the partial correlation of each trait's
  predictions with each factor the demo data planted, controlling for the other factors
  (traits may correlate, so a plain correlation could credit the wrong factor).

On the demo data the truth is known (``helpers.demo``: extraversion is the speed of the
head's roll, neuroticism brightness, agreeableness contrast, conscientiousness sharpness,
openness a shadow on the sides of the face), so each explanation can be checked. On real
data the same tools show what a model leans on (lighting, background, the person), but
there is no truth to check them against.

For notebook 06's error analysis: ``clip_face_stats`` and ``demo_clip_conditions`` say what
is known of each clip (from the cache; from the demo's ground truth), ``error_correlations``
and ``binned_mean_errors`` line each trait's errors up with it.

Every function reads the run through ``helpers.training.load_run`` (the run folder's format
is ``helpers.runs``') and the clips of a split through ``helpers.training.run_source`` and
the one prediction loop ``predict_source``, as evaluation does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from helpers import TRAITS
from helpers.cache import load_clip_cache

#: Clips per model call: bounds memory on large splits (about 300 KB per clip at 32 x 48 x 48).
BATCH_CLIPS = 32
#: Grey value of the occluding patch: the middle of the [0, 1] pixel range.
PATCH_VALUE = 0.5
#: What the demo data plants for each trait (``helpers.demo``), in words for tables and plots.
DEMO_FACTORS = {"extraversion": "roll speed", "neuroticism": "brightness", "agreeableness": "contrast",
                "conscientiousness": "sharpness", "openness": "fainter side shadow"}


def _model(run_dir: Path):
    from helpers.training import load_run

    return load_run(run_dir).model


# ----------------------------------------------------------------------------- pure helpers


def shuffled_order(real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of the positions of one sequence that shuffles the real frames among themselves.

    ``real`` is bool ``[length]``, True where a position holds a frame of the clip (usable
    or not) and False for padding. Padding positions map to themselves, so padding at
    the end stays at the end. Apply the result to the frames and to the mask alike.
    """
    real = np.asarray(real, dtype=bool)
    order = np.arange(len(real))
    where = np.flatnonzero(real)
    order[where] = rng.permutation(where)
    return order


def shuffle_frames(faces: np.ndarray, mask: np.ndarray, real: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the real frames of every clip of a batch; each frame's mask moves with it.

    ``faces`` ``[clips, length, ...]``, ``mask`` and ``real`` bool ``[clips, length]``;
    returns new arrays. One permutation per clip, drawn from ``rng``.
    """
    faces, mask, real = np.asarray(faces), np.asarray(mask, dtype=bool), np.asarray(real, dtype=bool)
    if mask.shape != real.shape or faces.shape[:2] != mask.shape:
        raise ValueError(f"faces {faces.shape}, mask {mask.shape} and real {real.shape} must agree "
                         "on [clips, length]")
    out_faces, out_mask = np.empty_like(faces), np.empty_like(mask)
    for i in range(len(faces)):
        order = shuffled_order(real[i], rng)
        out_faces[i], out_mask[i] = faces[i][order], mask[i][order]
    return out_faces, out_mask


def _residuals(y: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """What is left of ``y`` after a least-squares fit on ``controls`` and an intercept."""
    design = np.column_stack([np.ones(len(y)), controls])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


def partial_correlation(x: np.ndarray, y: np.ndarray, controls: np.ndarray | None = None) -> float:
    """Pearson correlation of ``x`` and ``y`` after removing what ``controls`` explain linearly.

    ``x``, ``y`` ``[n]``; ``controls`` ``[n, k]`` (or None: the plain correlation). Both are
    regressed on the controls (plus an intercept) by least squares and the residuals
    correlated. NaN when either residual is constant.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    controls = np.zeros((len(x), 0)) if controls is None else np.asarray(controls, dtype=np.float64).reshape(len(x), -1)
    if len(y) != len(x) or len(x) < controls.shape[1] + 3:
        raise ValueError(f"need x and y of equal length, at least {controls.shape[1] + 3} values "
                         f"for {controls.shape[1]} controls; got {len(x)} and {len(y)}")
    rx, ry = _residuals(x, controls), _residuals(y, controls)
    nx, ny = np.linalg.norm(rx), np.linalg.norm(ry)
    # A residual at round-off level means the controls explain that variable entirely.
    if nx <= 1e-12 * np.linalg.norm(x) or ny <= 1e-12 * np.linalg.norm(y):
        return float("nan")
    return float(rx @ ry / (nx * ny))


def partial_correlations(values: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """For each column ``j`` of ``factors`` ``[n, k]``: the partial correlation of ``values`` ``[n]``
    with factor ``j``, controlling for the other ``k - 1`` factors. Returns ``[k]``."""
    factors = np.asarray(factors, dtype=np.float64)
    return np.array([partial_correlation(values, factors[:, j], np.delete(factors, j, axis=1))
                     for j in range(factors.shape[1])])


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Top (or left) edges of the patches along one side; the last patch touches the far edge."""
    if not 1 <= patch <= size or stride < 1:
        raise ValueError(f"need 1 <= patch <= size and stride >= 1, got patch {patch}, size {size}, stride {stride}")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


# ----------------------------------------------------------------------------- reading a split


def _run_source(run_dir: Path, cache_dir: Path, split: str):
    from helpers.training import load_run, run_source

    run = load_run(run_dir)
    return run, run_source(run, Path(cache_dir), split)


def load_split_inputs(run_dir: Path, cache_dir: Path, split: str = "test", limit: int | None = None) -> dict[str, Any]:
    """The clips of ``split`` as the run's model takes them (for ``occlusion_maps`` and pictures).

    Returns ``{"faces": float32 [n, length, size, size, 1], "mask": bool [n, length], "y": float32 [n, 5],
    "names"}`` for the first ``limit`` readable clips (all when None), under the run's own
    splits; unusable files are left out (``helpers.inputs.ClipSource``). Masks are
    right-padded: the usable frames first, in order.
    """
    _, source = _run_source(run_dir, cache_dir, split)
    out = source.arrays(limit)
    if not out["names"]:
        raise ValueError(f"no readable clips in split {split!r} of {cache_dir}")
    return out


def predict_split(run_dir: Path, cache_dir: Path, split: str = "test", *, shuffle_seed: int | None = None,
                  repeats: int = 1) -> dict[str, Any]:
    """The run's predictions on ``split``: ``{"names", "y_true" [n, 5], "y_pred" [n, 5]}``.

    With ``shuffle_seed`` set, also ``"y_shuffled"`` ``[repeats, n, 5]``: the predictions
    after ``shuffle_frames`` (one generator from the seed serves every repeat, in order).
    """
    from helpers.training import predict_source

    run, source = _run_source(run_dir, cache_dir, split)
    transforms = []
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        # Packed input: the real frames are exactly the masked-in ones.
        transforms = [lambda faces, mask: shuffle_frames(faces, mask, mask, rng)] * repeats
    p = predict_source(run.model, source, BATCH_CLIPS, transforms)
    if not p["names"]:
        raise ValueError(f"no readable clips in split {split!r} of {cache_dir}")
    out = {"names": p["names"], "y_true": p["y_true"], "y_pred": p["y_pred"]}
    if transforms:
        out["y_shuffled"] = p["y_transformed"]
    return out


# ----------------------------------------------------------------------------- the three checks


def frame_order_effect(run_dir: Path, cache_dir: Path, split: str = "test", repeats: int = 3,
                       seed: int = 0) -> dict[str, float]:
    """Per trait: MAE on ``split`` with the real frames of every clip shuffled, minus the MAE as is.

    Averaged over ``repeats`` shuffles drawn from ``seed``. Padding stays at the end and
    each frame keeps its mask, so only the order of the frames changes. Positive: the
    trait's prediction depends on the order (motion); about 0: it is read from frames
    one at a time.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    p = predict_split(run_dir, cache_dir, split, shuffle_seed=seed, repeats=repeats)
    base = np.abs(p["y_pred"] - p["y_true"]).mean(axis=0)
    shuffled = np.abs(p["y_shuffled"] - p["y_true"][None]).mean(axis=(0, 1))
    return {t: float(v) for t, v in zip(TRAITS, shuffled - base)}


def occlusion_maps(run_dir: Path, faces: np.ndarray, mask: np.ndarray, patch: int = 8,
                   stride: int = 4) -> np.ndarray:
    """Float ``[5, size, size]``: how much each trait's prediction moves when a place is hidden.

    ``faces`` float32 ``[clips, length, size, size, 1]`` in [0, 1] and ``mask`` bool
    ``[clips, length]``, as the model takes them. A ``patch`` x ``patch`` square of value
    0.5 covers the same place in every frame of every clip; the mean absolute change of
    each trait's prediction (over clips) is credited to every pixel the square covers,
    and each pixel gets the mean over the squares that cover it.
    """
    faces, mask = np.asarray(faces, dtype=np.float32), np.asarray(mask, dtype=bool)
    if faces.ndim != 5 or faces.shape[2] != faces.shape[3] or faces.shape[:2] != mask.shape:
        raise ValueError(f"expected faces [clips, length, size, size, 1] and mask [clips, length], "
                         f"got {faces.shape} and {mask.shape}")
    from helpers.training import predict

    model = _model(run_dir)
    size = faces.shape[2]
    base = predict(model, faces, mask)
    total = np.zeros((len(TRAITS), size, size))
    count = np.zeros((size, size))
    for top in patch_positions(size, patch, stride):
        for left in patch_positions(size, patch, stride):
            hidden = faces.copy()
            hidden[:, :, top:top + patch, left:left + patch, :] = PATCH_VALUE
            change = np.abs(predict(model, hidden, mask) - base).mean(axis=0)
            total[:, top:top + patch, left:left + patch] += change[:, None, None]
            count[top:top + patch, left:left + patch] += 1
    return total / count


def planted_scores(demo_dir: Path, names: list[str]) -> np.ndarray:
    """``[len(names), 5]``: the demo factors of each named clip, each on its trait's 0-1 scale.

    Read from ``demo_factors.json`` (``helpers.demo``) and put through
    ``scores_from_factors``, so column ``k`` is the factor that sets ``TRAITS[k]``, scaled
    to rise with the trait (a sharper face, a fainter shadow).
    """
    from helpers.demo import FACTORS_FILE, load_demo_factors, scores_from_factors

    by_name = {c["name"]: c for c in load_demo_factors(demo_dir)["clips"]}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"{len(missing)} clips (e.g. {missing[0]}) are not in {Path(demo_dir) / FACTORS_FILE}: "
                         "was the cache prepared from this demo dataset?")
    return np.array([[scores_from_factors(by_name[n]["factors"])[t] for t in TRAITS] for n in names])


def factor_probe(run_dir: Path, cache_dir: Path, demo_dir: Path, split: str = "test") -> dict[str, dict[str, float]]:
    """``probe[trait][factor_trait]``: partial correlation of the run's ``trait`` predictions on
    ``split`` with the factor that sets ``factor_trait``, controlling for the other four factors.

    If the model learned what was planted, each row's largest value is on its own trait.
    """
    p = predict_split(run_dir, cache_dir, split)
    factors = planted_scores(demo_dir, p["names"])
    return {t: dict(zip(TRAITS, partial_correlations(p["y_pred"][:, k], factors).tolist()))
            for k, t in enumerate(TRAITS)}


# ----------------------------------------------------------------------------- error analysis (notebook 06)


def clip_face_stats(cache_dir: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Per clip, what the face step recorded in the cache (any data, real or demo), each ``[len(names)]``:

    ``sampled_frames`` (frames in the cache file), ``found_frames`` (of those, frames where
    the detector found the face), ``usable_frames`` (frames the model's mask lets through:
    the cache's ``usable`` where it records one, else ``found``) and ``face_width_px``
    (median width of the found boxes in the clip's own pixels; NaN when none was found).
    """
    from helpers.cache import clip_cache_path

    sampled, found, usable, width = [], [], [], []
    for name in names:
        data = load_clip_cache(clip_cache_path(Path(cache_dir), name))
        hits = data["found"].astype(bool)
        sampled.append(len(data["faces"]))
        found.append(int(hits.sum()))
        usable.append(int(np.count_nonzero(data.get("usable", hits))))
        width.append(float(np.median(data["boxes"][hits, 2])) if hits.any() else float("nan"))
    return {"sampled_frames": np.array(sampled), "found_frames": np.array(found),
            "usable_frames": np.array(usable), "face_width_px": np.array(width)}


def demo_clip_conditions(demo_dir: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Per clip, the nuisance the demo data planted beside the labels (from ``demo_factors.json``).

    ``clip_frames`` (length of the clip), ``face_width_px`` (drawn face width),
    ``absent_share`` (share of the clip's frames without the person, 0 for most clips),
    each ``[len(names)]``, and ``label_noise`` ``[len(names), 5]``: label minus noiseless
    score, the part of each label that no model can predict.
    """
    from helpers.demo import FACTORS_FILE, load_demo_factors

    by_name = {c["name"]: c for c in load_demo_factors(demo_dir)["clips"]}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"{len(missing)} clips (e.g. {missing[0]}) are not in {Path(demo_dir) / FACTORS_FILE}: "
                         "was the cache prepared from this demo dataset?")
    clips = [by_name[n] for n in names]
    absent = [(c["absent"][1] - c["absent"][0]) / c["n_frames"] if c.get("absent") else 0.0 for c in clips]
    return {"clip_frames": np.array([c["n_frames"] for c in clips]),
            "face_width_px": np.array([float(c["face_width"]) for c in clips]),
            "absent_share": np.array(absent, dtype=np.float64),
            "label_noise": np.array([[c["labels"][t] - c["scores"][t] for t in TRAITS] for c in clips])}


def error_correlations(errors: np.ndarray, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """For each named column ``[n]``: Pearson's r with each trait's error, ``errors`` ``[n, k]`` -> ``[k]``.

    NaN where r is undefined: a column with the same value for every clip cannot explain
    why one clip is worse than another.
    """
    from helpers.metrics import pearson_r

    errors = np.asarray(errors, dtype=np.float64)
    out = {}
    for name, values in columns.items():
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(values) != len(errors):
            raise ValueError(f"column {name!r} has {len(values)} values for {len(errors)} clips")
        out[name] = pearson_r(np.repeat(values[:, None], errors.shape[1], axis=1), errors)
    return out


def binned_mean_errors(values: np.ndarray, errors: np.ndarray, bins: int = 3) -> np.ndarray:
    """``[k, bins]``: for each column ``j``, the clips ordered by ``values[:, j]`` and cut into
    ``bins`` groups of (nearly) equal size, lowest first; each entry the group's mean ``errors[:, j]``.

    ``values`` and ``errors`` are ``[n, k]`` (say, each trait's planted factor and its error).
    """
    values, errors = np.asarray(values, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if values.shape != errors.shape or values.ndim != 2:
        raise ValueError(f"values {values.shape} and errors {errors.shape} must both be [n, k]")
    if not 1 <= bins <= len(values):
        raise ValueError(f"need 1 <= bins <= {len(values)} clips, got {bins}")
    out = np.empty((values.shape[1], bins))
    for j in range(values.shape[1]):
        groups = np.array_split(np.argsort(values[:, j], kind="stable"), bins)
        out[j] = [errors[g, j].mean() for g in groups]
    return out
