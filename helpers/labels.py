"""Label statistics, the two baselines and the split schemes of First Impressions V2.

Every clip of one YouTube video shows one person, and the official splits were not made
per person: on the real annotation files 84 % of the test clips come from a video that
also has clips in training. Labels are mostly a property of the person (65-80 % of each
trait's variance lies between videos), so predicting a test clip as the mean of *the
same video's training clips* already beats the train-mean baseline by far (0.9049 against
0.8814 mean accuracy on the real test split). This module measures all of that from the
annotation files alone, and offers a second way to split, by video, that keeps every
video on one side. On the demo a video is a person; the real clips come from 2,764 users
over 3,060 video ids, so a few people with several videos may still be on two sides (at
most 296 validation and test videos: data/README.md).

Annotations come as ``dataset.load_annotations`` returns them, one dict per split:
``{split: {trait: {clip name: score}}}`` with split in ``"train"``, ``"validation"``,
``"test"`` (``by_split`` below). The statistics:

- ``split_counts``: clips and distinct video ids per split;
- ``clips_with_video_in_training``: share of a split's clips whose video has a training clip;
- ``baselines``: mean accuracy on the test split of the train-mean and same-video predictions;
- ``trait_mean``, ``trait_sd``, ``trait_correlation``: on the training split
  (population SD; Pearson's r in ``helpers.TRAITS`` order);
- ``between_video_share``: share of each trait's variance that lies between videos;
- ``label_report`` / ``format_label_report``: all of the above, as JSON-ready dict and as text.

Split schemes (``split_scheme``), named apart from the splits themselves:

- ``"official"``: the splits the annotation files come in;
- ``"by-video"``: all clips regrouped by video id into the official proportions with a
  fixed ``split_seed``, no video in two splits (``by_video_splits``, ``assign_splits``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers import SPLITS, TRAITS
from helpers.dataset import AnnotationFileError, collect_labels, find_annotation_files, video_id
from helpers.metrics import mean_accuracy

#: The ways clips can be assigned to splits (``train --split-scheme``).
SPLIT_SCHEMES: tuple[str, ...] = ("official", "by-video")

#: split -> trait -> {clip name: score}: one ``load_annotations`` dict per split.
BySplit = Mapping[str, Mapping[str, Mapping[str, float]]]
Annotations = Mapping[str, Mapping[str, float]]


# --------------------------------------------------------------------------- tables


def label_matrix(annotations: Annotations) -> tuple[list[str], np.ndarray]:
    """Clip names (sorted) and their labels, float64 ``[n_clips, 5]`` in TRAITS order."""
    names = sorted(annotations[TRAITS[0]])
    values = np.array([[annotations[t][c] for t in TRAITS] for c in names], dtype=np.float64).reshape(-1, len(TRAITS))
    return names, values


def merge_splits(by_split: BySplit) -> dict[str, dict[str, float]]:
    """All splits' annotations in one dict trait -> {clip: score}; a clip in two splits raises ValueError."""
    merged: dict[str, dict[str, float]] = {t: {} for t in TRAITS}
    seen: dict[str, str] = {}
    for split, annotations in by_split.items():
        for clip in annotations[TRAITS[0]]:
            if clip in seen:
                raise ValueError(f"clip {clip} is in both the {seen[clip]} and the {split} annotations; "
                                 "each clip must belong to one split")
            seen[clip] = split
            for t in TRAITS:
                merged[t][clip] = float(annotations[t][clip])
    return merged


def _videos(clips: Iterable[str]) -> dict[str, list[str]]:
    """video id -> its clip names (sorted), for the clips given."""
    groups: dict[str, list[str]] = {}
    for clip in sorted(clips):
        groups.setdefault(video_id(clip), []).append(clip)
    return groups


def _float_or_none(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


# --------------------------------------------------------------------------- statistics


def split_counts(by_split: BySplit) -> dict[str, dict[str, int]]:
    """split -> {"clips": number of clips, "videos": number of distinct video ids}, for every split in SPLITS."""
    counts = {}
    for split in SPLITS:
        clips = list(by_split[split][TRAITS[0]]) if split in by_split else []
        counts[split] = {"clips": len(clips), "videos": len(_videos(clips))}
    return counts


def clips_with_video_in_training(by_split: BySplit) -> dict[str, float | None]:
    """For validation and test: the share of the split's clips whose video id also has a training clip.

    None for a split that is missing or empty.
    """
    train_videos = set(_videos(by_split["train"][TRAITS[0]]))
    shares: dict[str, float | None] = {}
    for split in ("validation", "test"):
        clips = list(by_split[split][TRAITS[0]]) if split in by_split else []
        shares[split] = sum(video_id(c) in train_videos for c in clips) / len(clips) if clips else None
    return shares


def trait_mean(annotations: Annotations) -> dict[str, float]:
    """Each trait's mean over the clips of ``annotations`` (pass the training split)."""
    _, y = label_matrix(annotations)
    return {t: float(v) for t, v in zip(TRAITS, y.mean(axis=0))}


def trait_sd(annotations: Annotations) -> dict[str, float]:
    """Each trait's population standard deviation (ddof 0) over the clips of ``annotations``."""
    _, y = label_matrix(annotations)
    return {t: float(v) for t, v in zip(TRAITS, y.std(axis=0))}


def trait_correlation(annotations: Annotations) -> list[list[float | None]]:
    """Pearson's r between the traits over the clips, 5x5 in TRAITS order; None where a trait is constant."""
    _, y = label_matrix(annotations)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(y, rowvar=False)
    return [[_float_or_none(v) for v in row] for row in np.atleast_2d(r)]


def mean_pairwise_correlation(correlation: Sequence[Sequence[float | None]]) -> float:
    """The mean of the off-diagonal entries of a trait correlation matrix (``trait_correlation``)."""
    r = np.array(correlation, dtype=np.float64)
    return float(r[~np.eye(len(r), dtype=bool)].mean())


def r2_from_others(annotations: Annotations, trait: str = "extraversion") -> float:
    """R^2 of a least-squares fit (with intercept) of ``trait`` on the four other traits, over the clips.

    How much of a trait a model could get without seeing that trait's own cue, from the
    others alone (the demo's extraversion is motion: a per-frame model sees only the others).
    """
    _, y = label_matrix(annotations)
    i = TRAITS.index(trait)
    target, others = y[:, i], np.delete(y, i, axis=1)
    design = np.column_stack([np.ones(len(y)), others])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    total = ((target - target.mean()) ** 2).sum()
    return float(1.0 - (residual**2).sum() / total) if total > 0 else float("nan")


def within_video_variance(annotations: Annotations) -> dict[str, float | None]:
    """Per trait: the mean, over videos with >= 2 clips, of the population variance of their clips' labels.

    None when no video has two clips.
    """
    names, y = label_matrix(annotations)
    row = {c: i for i, c in enumerate(names)}
    multi = [[row[c] for c in clips] for clips in _videos(names).values() if len(clips) >= 2]
    if not multi:
        return {t: None for t in TRAITS}
    per_video = np.array([y[rows].var(axis=0) for rows in multi])
    return {t: float(v) for t, v in zip(TRAITS, per_video.mean(axis=0))}


def between_video_share(annotations: Annotations) -> dict[str, float | None]:
    """Per trait: ``1 - within_video_variance / (population variance over all clips)``.

    The share of a trait's variance that lies between videos (a video shows one person); pass all clips
    (``merge_splits``). None when no video has two clips or the trait is constant.
    The population variance of a video's few clips underestimates its spread (by the factor
    ``(k - 1) / k`` for ``k`` clips), so labels with no person effect at all read above 0
    (about 0.3-0.45 for videos of 1-6 clips): compare shares measured this same way.
    """
    _, y = label_matrix(annotations)
    within = within_video_variance(annotations)
    total = y.var(axis=0)
    return {t: (None if within[t] is None or total[i] == 0 else float(1.0 - within[t] / total[i]))
            for i, t in enumerate(TRAITS)}


def same_video_means(y_train: np.ndarray, train_videos: Sequence[str], videos: Sequence[str]) -> np.ndarray:
    """For each of ``videos``: the mean of the ``y_train`` rows of that video, or of all rows when it has none.

    ``y_train`` is ``[n_train, n_traits]``, ``train_videos`` its rows' video ids; returns ``[len(videos), n_traits]``.
    """
    y_train = np.asarray(y_train, dtype=np.float64)
    rows: dict[str, list[int]] = {}
    for i, vid in enumerate(train_videos):
        rows.setdefault(vid, []).append(i)
    means = y_train.mean(axis=0)
    by_video = {vid: y_train[r].mean(axis=0) for vid, r in rows.items()}
    return np.array([by_video.get(v, means) for v in videos], dtype=np.float64).reshape(-1, y_train.shape[1])


def same_video_predictions(train: Annotations, clips: Sequence[str]) -> np.ndarray:
    """For each clip: the mean label of its video's training clips, or the training mean when it has none.

    ``[len(clips), 5]`` in TRAITS order. A clip that is itself a training clip counts in its
    own video's mean: pass clips of another split.
    """
    names, y = label_matrix(train)
    return same_video_means(y, [video_id(c) for c in names], [video_id(c) for c in clips])


def baseline_accuracies(y_train: np.ndarray, train_videos: Sequence[str],
                        y_eval: np.ndarray, eval_videos: Sequence[str]) -> dict[str, float]:
    """Mean accuracy on ``y_eval`` of the train-mean and the same-video predictions (see ``baselines``)."""
    y_eval = np.asarray(y_eval, dtype=np.float64)
    if len(y_eval) == 0:
        raise ValueError("no clips to score the baselines on")
    means = np.asarray(y_train, dtype=np.float64).mean(axis=0)
    return {
        "train_mean": mean_accuracy(y_eval, np.repeat(means[None, :], len(y_eval), axis=0)),
        "same_video": mean_accuracy(y_eval, same_video_means(y_train, train_videos, eval_videos)),
    }


def baselines(by_split: BySplit, split: str = "test") -> dict[str, float]:
    """Mean accuracy (mean over traits of 1 - MAE) on ``split`` of two predictions that look at no clip.

    ``train_mean``: each trait's training mean for every clip; ``same_video``: the mean of
    the same video's training clips, the training mean when it has none (``same_video_predictions``).
    """
    train_names, y_train = label_matrix(by_split["train"])
    names, y = label_matrix(by_split[split])
    if not names:
        raise ValueError(f"the {split} split has no clips to score the baselines on")
    return baseline_accuracies(y_train, [video_id(c) for c in train_names], y, [video_id(c) for c in names])


def label_report(by_split: BySplit) -> dict[str, Any]:
    """Every statistic of this module, JSON-ready, floats unrounded.

    Needs the training split and the test split (the baselines are scored on test);
    validation may be missing. Keys: ``traits`` (the order of ``trait_correlation``),
    ``splits``, ``clips_with_video_in_training``, ``baselines``, ``trait_mean``,
    ``trait_sd``, ``trait_correlation``, ``between_video_share`` (over all clips).
    """
    for split in ("train", "test"):
        if split not in by_split or not by_split[split][TRAITS[0]]:
            file = "annotation_training.pkl" if split == "train" else "annotation_test.pkl"
            raise ValueError(f"label statistics need the {split} annotations ({file}) and none were given; "
                             "give the folder holding the three annotation files, or name each file")
    train = by_split["train"]
    return {
        "traits": list(TRAITS),
        "splits": split_counts(by_split),
        "clips_with_video_in_training": clips_with_video_in_training(by_split),
        "baselines": baselines(by_split),
        "trait_mean": trait_mean(train),
        "trait_sd": trait_sd(train),
        "trait_correlation": trait_correlation(train),
        "between_video_share": between_video_share(merge_splits(by_split)),
    }


def format_label_report(report: Mapping[str, Any]) -> str:
    """The ``label_report`` dict as text for people: splits, overlap, baselines, then a table per trait."""
    def num(v: float | None, spec: str = ".3f") -> str:
        return "n/a" if v is None else format(v, spec)

    splits, overlap, base = report["splits"], report["clips_with_video_in_training"], report["baselines"]
    lines = ["Splits (clips from videos; a video shows one person, a person may have several videos)"]
    for split, c in splits.items():
        lines.append(f"  {split:<11}{c['clips']:>7} clips from {c['videos']:>6} videos")
    lines.append("Clips whose video also has clips in training (the same video, so the same person, on both sides)")
    for split, share in overlap.items():
        lines.append(f"  {split:<11}{num(share, '.1%'):>7}")
    lines += [
        "Baselines on the test split (mean accuracy = mean over the traits of 1 - MAE)",
        f"  train mean {base['train_mean']:.4f}   each trait's training mean for every clip",
        f"  same video {base['same_video']:.4f}   mean of the same video's training clips (train mean if none)",
        f"  gain       {base['same_video'] - base['train_mean']:+.4f}   open to a model that only recognises the person",
        "",
        f"{'trait':<18}{'mean':>6}{'SD':>7}{'between':>9}   r with " + " ".join(f"{t[:4]:>5}" for t in report["traits"]),
    ]
    for i, t in enumerate(report["traits"]):
        row = " ".join(f"{num(v, '5.2f'):>5}" for v in report["trait_correlation"][i])
        lines.append(f"{t:<18}{report['trait_mean'][t]:6.3f}{report['trait_sd'][t]:7.3f}"
                     f"{num(report['between_video_share'][t], '9.2f'):>9}          {row}")
    lines.append("mean, SD (population) and r (Pearson) over the training clips;")
    lines.append("between = share of the trait's variance lying between videos (all clips)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- reading files


def load_label_files(paths: Sequence[str | os.PathLike]) -> dict[str, dict[str, dict[str, float]]]:
    """Annotations per split from annotation files, or folders searched for ``*annotation*.pkl``.

    The split comes from each file's name (``annotation_training.pkl`` -> ``"train"``).
    Raises ``AnnotationFileError`` naming the path and what to do when a folder holds no
    annotation file, a name tells no split, or two files disagree about a clip.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = find_annotation_files(path)
            if not found:
                raise AnnotationFileError(
                    f"no annotation file (*annotation*.pkl) under {path}; point at the folder holding "
                    "annotation_training.pkl, annotation_validation.pkl and annotation_test.pkl, or at the files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise AnnotationFileError(f"{path} does not exist; give a folder holding the annotation files, or the files")
    labels = collect_labels(files)  # reads with the restricted unpickler; conflicting copies raise
    _check_clip_names(labels.by_clip, labels.origin)
    untold = [f for f, split in labels.files.items() if split is None]
    if untold:
        raise AnnotationFileError(
            f"cannot tell the split of {untold[0]} from its name; name it like annotation_training.pkl, "
            "annotation_validation.pkl or annotation_test.pkl")
    by_split: dict[str, dict[str, dict[str, float]]] = {}
    for clip in sorted(labels.by_clip):
        table = by_split.setdefault(labels.split[clip], {t: {} for t in TRAITS})
        for t in TRAITS:
            table[t][clip] = labels.by_clip[clip][t]
    return {s: by_split[s] for s in SPLITS if s in by_split}


def _check_clip_names(clips: Iterable[str], origin: Mapping[str, str]) -> None:
    """Raise ``AnnotationFileError`` naming the file of the first clip name that has no video id."""
    for clip in clips:
        try:
            video_id(clip)
        except ValueError as exc:
            raise AnnotationFileError(f"annotation file {origin.get(clip, '(unknown)')}: {exc}; "
                                      "is it a First Impressions annotation file?") from exc


# --------------------------------------------------------------------------- split schemes


def by_video_splits(clip_names: Iterable[str], official_splits: Mapping[str, str | None],
                    split_seed: int = 0) -> dict[str, str]:
    """Regroup clips by video id into the official proportions: clip name -> split, no video in two splits.

    The targets are the official clip counts per split of ``clip_names``. Videos (sorted
    ids) are shuffled by ``split_seed`` and laid end to end; each goes to the split in
    whose share of the line its middle falls. So each boundary between splits moves by at
    most half the largest video's clip count (training and test: within half of it of
    their targets, validation within all of it), and the result depends only on the names,
    their official splits and ``split_seed``. Raises ValueError when a split with clips
    in the official scheme would get none (too few videos).
    """
    names = sorted(set(clip_names))
    official = _official(names, official_splits)
    targets = np.array([sum(official[c] == s for c in names) for s in SPLITS], dtype=np.float64)
    videos = _videos(names)
    ids = sorted(videos)
    order = np.random.default_rng(split_seed).permutation(len(ids))
    bounds = np.cumsum(targets)
    assignment: dict[str, str] = {}
    start = 0
    for i in order:
        members = videos[ids[i]]
        middle = start + len(members) / 2
        split = SPLITS[min(int(np.searchsorted(bounds, middle, side="right")), len(SPLITS) - 1)]
        assignment.update((c, split) for c in members)
        start += len(members)
    for split, target in zip(SPLITS, targets):
        if target > 0 and split not in assignment.values():
            raise ValueError(f"{len(ids)} videos are too few to regroup by video into the official proportions "
                             f"({', '.join(f'{s} {int(n)}' for s, n in zip(SPLITS, targets))} clips): "
                             f"the {split} split would be empty; use split_scheme 'official' or more clips")
    return {c: assignment[c] for c in names}


def _official(names: Sequence[str], official_splits: Mapping[str, str | None]) -> dict[str, str]:
    missing = [c for c in names if official_splits.get(c) not in SPLITS]
    if missing:
        raise ValueError(f"clip {missing[0]} (and {len(missing) - 1} more) has no official split "
                         f"({official_splits.get(missing[0])!r}); its annotation file must be named after its split")
    return {c: official_splits[c] for c in names}


def assign_splits(clip_names: Iterable[str], official_splits: Mapping[str, str | None],
                  scheme: str = "official", split_seed: int = 0) -> dict[str, str]:
    """clip name -> split under ``scheme`` (``SPLIT_SCHEMES``); sorted by name.

    ``"official"``: each clip's official split (``split_seed`` unused); ``"by-video"``:
    ``by_video_splits``. Raises ValueError for an unknown scheme or a clip without an
    official split.
    """
    names = sorted(set(clip_names))
    if scheme == "official":
        return _official(names, official_splits)
    if scheme == "by-video":
        return by_video_splits(names, official_splits, split_seed)
    raise ValueError(f"unknown split scheme {scheme!r}; choose one of {', '.join(SPLIT_SCHEMES)}")
