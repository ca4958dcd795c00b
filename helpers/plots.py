"""The pictures the notebooks show: small matplotlib functions on numpy arrays.

Each function draws into a new figure (or a given axes) and returns the figure, so a
notebook cell can end with the call and show the picture.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np

from helpers import TRAITS
from helpers.sequences import repeat_mask


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV frames are BGR (or grayscale); matplotlib wants RGB."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def frame_grid(frames: Sequence[np.ndarray], titles: Sequence[str] | None = None, columns: int = 4,
               width: float = 12.0) -> plt.Figure:
    """Show frames (BGR or grayscale uint8) in a grid, with optional titles."""
    rows = max(1, int(np.ceil(len(frames) / columns)))
    h, w = frames[0].shape[:2]
    fig, axes = plt.subplots(rows, columns, figsize=(width, width / columns * rows * h / w + 0.3 * rows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(frames):
            ax.imshow(_as_rgb(frames[i]))
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def draw_box(frame: np.ndarray, box: Sequence[float], found: bool = True, thickness: int = 3,
             label: str | None = None) -> np.ndarray:
    """A copy of ``frame`` (BGR) with box (x, y, w, h) drawn: green if detected, orange if filled in."""
    out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    x, y, w, h = (int(round(v)) for v in box)
    colour = (60, 200, 60) if found else (0, 140, 255)
    cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
    if label:
        cv2.putText(out, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thickness / 2, colour,
                    max(1, thickness - 1), cv2.LINE_AA)
    return out


#: Colours of the three kinds of frame of ``helpers.faces.FaceSequence`` (``frame_kinds``).
KIND_COLOURS = {"found": "#2ca02c", "interpolated": "#1f77b4", "unusable": "#ff8c00"}


def frame_kinds(found: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per frame: "found" (detected), "interpolated" (usable, not detected) or "unusable"."""
    found, usable = np.asarray(found, bool), np.asarray(usable, bool)
    return np.where(found, "found", np.where(usable, "interpolated", "unusable"))


def face_timeline(seq, spans: Mapping[str, tuple[float, float]] | None = None, width: float = 12.0) -> plt.Figure:
    """The followed face over a clip: box centre (x) per sampled frame, coloured by ``frame_kinds``.

    ``seq`` is a ``helpers.faces.FaceSequence``; ``spans`` maps a label to (start, end)
    seconds to shade, e.g. when the face was really out of the frame.
    """
    times = np.asarray(seq.frame_indices) / seq.fps
    kinds = frame_kinds(seq.found, seq.usable)
    centre = np.asarray(seq.boxes)[:, 0] + np.asarray(seq.boxes)[:, 2] / 2
    fig, ax = plt.subplots(figsize=(width, 2.6))
    for (label, span), shade in zip((spans or {}).items(), ("#d9e6f2", "#e6e6e6", "#f6dcc4")):
        ax.axvspan(*span, color=shade, label=label)
    for kind, colour in KIND_COLOURS.items():
        rows = kinds == kind
        ax.scatter(times[rows], centre[rows], s=40, color=colour, label=f"{kind} ({int(rows.sum())})", zorder=3)
    ax.set_xlabel("time in the clip (s)")
    ax.set_ylabel("box centre x (px)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def face_montage(faces: np.ndarray, found: np.ndarray | None = None, columns: int = 8,
                 titles: Sequence[str] | None = None, width: float = 12.0,
                 usable: np.ndarray | None = None) -> plt.Figure:
    """Show grayscale crops [n, s, s] in a grid.

    With ``found`` only, crops without a detection get an orange frame; with ``usable`` too,
    frames are coloured by ``frame_kinds`` (``KIND_COLOURS``: interpolated blue, unusable orange).
    """
    n = len(faces)
    kinds = None if found is None else frame_kinds(found, found if usable is None else usable)
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(width, width / columns * rows * 1.12), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        marked = kinds is not None and kinds[i] != "found"
        for spine in ax.spines.values():
            spine.set_edgecolor(KIND_COLOURS[kinds[i]] if marked else "#cccccc")
            spine.set_linewidth(3 if marked else 1)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def index_timelines(rows: Mapping[str, np.ndarray], n_source: int, width: float = 12.0) -> plt.Figure:
    """Draw, per strategy, which source frame fills each output position (-1 = padding).

    ``rows`` maps a strategy name to an int array of source indices, one per output position.
    Repeated source frames are drawn in red, padding as grey gaps: the picture shows at a
    glance how each way of fixing the length treats a clip of ``n_source`` frames.
    """
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, 1.3 * len(rows) + 0.6), squeeze=False, sharex=True)
    for ax, (name, idx) in zip(axes[:, 0], rows.items()):
        idx = np.asarray(idx)
        positions = np.arange(len(idx))
        real, repeat = idx >= 0, repeat_mask(idx)
        ax.scatter(positions[real & ~repeat], idx[real & ~repeat], s=14, color="#1f77b4", label="source frame")
        ax.scatter(positions[real & repeat], idx[real & repeat], s=14, color="#d62728", label="repeated frame")
        ax.scatter(positions[~real], np.full((~real).sum(), -0.05 * n_source), s=14, marker="s", color="#999999",
                   label="zero padding (masked)")
        ax.set_ylim(-0.12 * n_source, n_source * 1.05)
        ax.set_ylabel("source\nframe")
        ax.set_title(f"{name}: {int(real.sum())} real positions, {int(repeat.sum())} repeats, "
                     f"{int((~real).sum())} padded", fontsize=10, loc="left")
    axes[-1, 0].set_xlabel("position in the fixed-length sequence")
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="upper right", fontsize=8, ncol=3)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def label_histograms(labels: Mapping[str, Sequence[float]], bins: int = 20, width: float = 14.0) -> plt.Figure:
    """One histogram per trait of scores in [0, 1], with the mean marked.

    ``labels`` maps a trait to its scores: a sequence, or clip -> score as ``load_annotations`` returns.
    """
    names = [t for t in TRAITS if t in labels] + [t for t in labels if t not in TRAITS]
    fig, axes = plt.subplots(1, len(names), figsize=(width, 2.8), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        scores = labels[name]
        values = np.asarray(list(scores.values()) if isinstance(scores, Mapping) else scores, dtype=float)
        ax.hist(values, bins=bins, range=(0, 1), color="#4c72b0")
        ax.axvline(values.mean(), color="k", ls="--", lw=1)
        ax.set_title(f"{name}\nmean {values.mean():.2f}, sd {values.std():.2f}", fontsize=9)
        ax.set_xlim(0, 1)
    axes[0, 0].set_ylabel("clips")
    fig.tight_layout()
    return fig


def training_curves(history: Mapping[str, Sequence[float]], baseline: float | None = None,
                    metric: str = "loss", width: float = 7.0) -> plt.Figure:
    """Training and validation curves of ``metric`` per epoch, with an optional baseline line."""
    fig, ax = plt.subplots(figsize=(width, 3.6))
    epochs = np.arange(1, len(history[metric]) + 1)
    ax.plot(epochs, history[metric], "o-", label=f"training {metric}")
    if f"val_{metric}" in history:
        ax.plot(epochs, history[f"val_{metric}"], "o-", label=f"validation {metric}")
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", label="train-mean baseline")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.legend()
    fig.tight_layout()
    return fig


def prediction_scatter(y_true: np.ndarray, y_pred: np.ndarray, baseline: np.ndarray | None = None,
                       traits: Sequence[str] = TRAITS, width: float = 15.0) -> plt.Figure:
    """Predicted against true score per trait; the diagonal is perfect, the dashed line the baseline."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    fig, axes = plt.subplots(1, len(traits), figsize=(width, width / len(traits) + 0.6), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], traits)):
        ax.scatter(y_true[:, k], y_pred[:, k], s=12, alpha=0.7)
        ax.plot([0, 1], [0, 1], color="k", lw=0.8)
        if baseline is not None:
            ax.axhline(float(baseline[k]), color="grey", ls="--", lw=1)
        mae = float(np.mean(np.abs(y_true[:, k] - y_pred[:, k])))
        ax.set_title(f"{name}\nMAE {mae:.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("true")
    axes[0, 0].set_ylabel("predicted")
    fig.tight_layout()
    return fig


def occlusion_overlays(maps: np.ndarray, mean_face: np.ndarray, traits: Sequence[str] = TRAITS,
                       width: float = 15.0) -> plt.Figure:
    """The mean face, then each trait's occlusion map (``helpers.explain.occlusion_maps``) over it.

    Each map has its own colour scale (its maximum is in the title): compare where a
    trait looks, not how much, across panels.
    """
    maps, face = np.asarray(maps), np.squeeze(np.asarray(mean_face))
    fig, axes = plt.subplots(1, len(traits) + 1, figsize=(width, width / (len(traits) + 1) + 0.5))
    axes[0].imshow(face, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("mean face", fontsize=9)
    for ax, name, m in zip(axes[1:], traits, maps):
        ax.imshow(face, cmap="gray", vmin=0, vmax=1)
        ax.imshow(m, cmap="inferno", alpha=0.6, vmin=0, vmax=max(float(m.max()), 1e-12))
        ax.set_title(f"{name}\nmax change {m.max():.3f}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def frame_order_bars(effect: Mapping[str, float], width: float = 7.0) -> plt.Figure:
    """Bar chart of each trait's MAE increase when the frames are shuffled (``frame_order_effect``)."""
    names, values = list(effect), np.array([effect[t] for t in effect])
    fig, ax = plt.subplots(figsize=(width, 3.2))
    ax.bar(names, values, color=["#c44e52" if v == values.max() else "#4c72b0" for v in values])
    ax.axhline(0, color="k", lw=0.8)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:+.3f}", ha="center", va="bottom" if v >= 0 else "top", fontsize=9)
    ax.set_ylabel("test MAE increase\nwhen frames are shuffled")
    ax.tick_params(axis="x", labelsize=9)
    fig.tight_layout()
    return fig


def factor_probe_table(probe: Mapping[str, Mapping[str, float]], factor_names: Mapping[str, str] | None = None,
                       width: float = 7.5) -> plt.Figure:
    """``factor_probe`` as a table of colours: rows the predicted traits, columns the planted factors.

    The diagonal is each trait's own factor; each row's largest value by size (either sign) is
    bold; ``factor_names`` labels the columns (trait -> factor).
    """
    rows = list(probe)
    cols = list(next(iter(probe.values())))
    values = np.array([[probe[r][c] for c in cols] for r in rows])
    fig, ax = plt.subplots(figsize=(width, 0.55 * len(rows) + 1.6))
    ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{values[i, j]:+.2f}", ha="center", va="center", fontsize=9,
                    color="white" if abs(values[i, j]) > 0.6 else "black",
                    fontweight="bold" if j == int(np.nanargmax(np.abs(values[i]))) else "normal")
    labels = [f"{(factor_names or {}).get(c, c)} ({c})" for c in cols]
    ax.set_xticks(range(len(cols)), labels, fontsize=8, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    ax.set_xlabel("planted factor (the trait it sets)")
    ax.set_ylabel("predicted trait")
    fig.tight_layout()
    return fig


def reliability_plot(y_true: np.ndarray, y_pred: np.ndarray, bins: int = 5, traits: Sequence[str] = TRAITS,
                     recalibrated: np.ndarray | None = None, width: float = 15.0) -> plt.Figure:
    """Calibration per trait: mean label against mean prediction in ``bins`` equal-count bins.

    One panel per trait; the diagonal is a calibrated model; a line steeper than it, over a
    narrow range of predictions, shows predictions shrunk toward the mean (labels vary more).
    ``recalibrated`` (predictions after ``metrics.apply_recalibration``) adds a
    second line per panel. Bins from ``helpers.metrics.reliability_bins``.
    """
    from helpers.metrics import reliability_bins

    sets = {"predictions": y_pred} if recalibrated is None else {"raw": y_pred, "recalibrated": recalibrated}
    binned = {name: reliability_bins(y_true, p, bins) for name, p in sets.items()}
    fig, axes = plt.subplots(1, len(traits), figsize=(width, width / len(traits) + 0.9), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], traits)):
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--", label="calibrated")
        for (label, (mp, mt, _)), style in zip(binned.items(), ("o-", "s-")):
            ax.plot(mp[:, k], mt[:, k], style, ms=5, label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("mean prediction")
    axes[0, 0].set_ylabel("mean label")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    n = len(np.asarray(y_true))
    fig.suptitle(f"Reliability: mean label against mean prediction, {bins} equal-count bins of {n} clips per trait "
                 "(dashed diagonal = calibrated)", fontsize=10)
    fig.tight_layout()
    return fig


def interval_plot(reports: Mapping[str, Mapping], metric: str = "accuracy", width: float = 8.0) -> plt.Figure:
    """Estimates with their intervals, one row per trait, one dot and bar per report.

    ``reports`` maps a label (a run, a seed) to a ``helpers.metrics.score_report`` dict;
    ``metric`` is one of its per-trait metrics. With ``metric="accuracy"`` a last row
    shows the mean accuracy (the challenge score). Undefined estimates are left out.
    """
    first = next(iter(reports.values()))
    rows = list(first["traits"])
    extra = metric == "accuracy"
    labels = rows + (["mean (score)"] if extra else [])
    fig, ax = plt.subplots(figsize=(width, 0.45 * len(labels) * max(1, len(reports)) ** 0.5 + 1.4))
    step = 0.6 / max(1, len(reports))
    for i, (name, rep) in enumerate(reports.items()):
        cells = [rep["traits"][t][metric] for t in rows] + ([rep["mean_accuracy"]] if extra else [])
        ys, xs, lo, hi = [], [], [], []
        for y, cell in enumerate(cells):
            if cell.get("estimate") is None:
                continue
            ys.append(y + (i - (len(reports) - 1) / 2) * step)
            xs.append(cell["estimate"])
            lo.append(cell["estimate"] - (cell["low"] if cell["low"] is not None else cell["estimate"]))
            hi.append((cell["high"] if cell["high"] is not None else cell["estimate"]) - cell["estimate"])
        ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", ms=5, capsize=3, label=name)
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    level = first.get("level", 0.95)
    ax.set_title(f"{metric} per trait with {level:.0%} intervals that resample videos "
                 f"({first['n_clips']} clips, {first['n_videos']} videos)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if len(reports) > 1:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def group_error_plot(audits: Mapping, metric: str = "signed_error", width: float = 10.0) -> plt.Figure:
    """Per trait, per group, one ``helpers.audit.audit_by_group`` figure as a dot with its interval.

    ``audits``: one audit dict, or a mapping title -> audit dict (e.g. "against the labels",
    "against the true scores") drawn as panels side by side on one x axis. ``metric``: one of
    ``helpers.audit.GROUP_METRICS``; for ``signed_error`` a dashed line marks 0 (no over- or
    under-estimate). Undefined estimates are left out.
    """
    panels = {"": audits} if "per_group" in audits else dict(audits)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 0.55 * len(next(iter(panels.values()))["traits"])
                                                      + 1.6), squeeze=False, sharex=True, sharey=True)
    for ax, (title, rep) in zip(axes[0], panels.items()):
        rows, names = rep["traits"], rep["groups"]
        step = 0.6 / max(1, len(names))
        for k, name in enumerate(names):
            ys, xs, lo, hi = [], [], [], []
            for y, trait in enumerate(rows):
                cell = rep["per_group"][name]["traits"][trait][metric]
                if cell.get("estimate") is None:
                    continue
                est = cell["estimate"]
                ys.append(y + (k - (len(names) - 1) / 2) * step)
                xs.append(est)
                lo.append(est - (cell["low"] if cell["low"] is not None else est))
                hi.append((cell["high"] if cell["high"] is not None else est) - est)
            n = rep["per_group"][name]["n_videos"]
            ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", ms=5, capsize=3, label=f"{name} ({n} videos)")
        if metric == "signed_error":
            ax.axvline(0.0, color="0.3", lw=1, ls="--")
        ax.set_yticks(range(len(rows)), rows, fontsize=9)
        ax.set_xlabel(f"{metric.replace('_', ' ')} (prediction - {rep['against']})" if metric == "signed_error"
                      else metric.replace("_", " "))
        ax.set_title(title or f"against {rep['against']}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[0][0].invert_yaxis()
    first = next(iter(panels.values()))
    fig.suptitle(f"per group, with {first['level']:.0%} intervals that resample people within each group",
                 fontsize=10)
    fig.tight_layout()
    return fig
