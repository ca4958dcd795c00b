"""An audit by group: who does the model fail, with intervals that resample people within each group.

A group is an attribute of a person (a video id stands in for a person, as in ``helpers.metrics``),
read from a *group file* (``read_groups``). The audit (``audit_by_group``) reports per group the
MAE, the mean signed error (prediction - label), Pearson's r, the mean prediction and the mean
label, and per group its gap to a reference group in mean prediction, mean label, mean signed
error and MAE. Every figure carries a percentile interval from a *stratified* cluster bootstrap:
each resample draws, within each group, as many videos as the group has (with replacement, all
their clips), so every resample keeps the groups' sizes. That reuses ``helpers.metrics``'
per-video sums and ``resample_counts``: no second bootstrap.

"Label" is whatever the predictions are scored against: the rated scores (what a real audit
has), or, on the demo data, the true unbiased scores (what real data never has). The call is the
same; ``against`` names it in the report.

The group file format (UTF-8 CSV, at most ``MAX_GROUP_FILE_BYTES``)::

    # lines starting with '#' are comments; blank lines are skipped
    id,group
    J4GQm9j0JZ0,female
    kq2Yw8d1xYc.003.mp4,male

``id`` is a video id (any non-empty text without spaces that is not a clip name) or a clip name
``<video id>.<NNN>.mp4``; ``group`` a short label (at most ``MAX_GROUP_LENGTH`` characters). A
video belongs to one group: a file that gives one video (directly or through its clips) two
groups is refused, naming the file and both lines. To convert the supplementary annotations of
First Impressions (Escalante et al., IEEE TAC 2020) read their codes into a dict id -> code and
map them with ``GENDER`` (1 = male, 2 = female) or ``ETHNICITY`` (1 = Asian, 2 = Caucasian,
3 = African-American) through ``code_groups``, then ``write_groups``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from helpers import TRAITS
from helpers.atomic import write_atomic
from helpers.dataset import video_id
from helpers.metrics import (_check_level, _interval, _metrics_from_sums, _pair, _video_codes,
                             _video_sums, interval_text, resample_counts)

#: The group file's header line.
GROUP_HEADER = ("id", "group")
#: Larger group files are refused (the real data's 10,000 clips take well under 1 MB).
MAX_GROUP_FILE_BYTES = 16 * 1024 * 1024
#: Longest group label accepted.
MAX_GROUP_LENGTH = 40
#: Escalante et al. 2020's gender codes.
GENDER: dict[int, str] = {1: "male", 2: "female"}
#: Escalante et al. 2020's ethnicity codes.
ETHNICITY: dict[int, str] = {1: "Asian", 2: "Caucasian", 3: "African-American"}

_CLIP = re.compile(r"^.+\.\d+\.mp4$", re.IGNORECASE)
_ID = re.compile(r"^[^\s,]+$")


class GroupFileError(ValueError):
    """A group file that cannot be read: the message names the file, the line and what to do."""


# ----------------------------------------------------------------------------- the group file


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        raise GroupFileError(f"{path}: holds NUL bytes: not a text file; a group file is UTF-8 CSV 'id,group'")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GroupFileError(f"{path}: line {line}: not UTF-8 text; save the file as UTF-8") from None


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise GroupFileError(f"{path}: no such group file") from None
    except IsADirectoryError:
        raise GroupFileError(f"{path}: is a folder; give the group file (CSV 'id,group') itself") from None
    except OSError as exc:
        raise GroupFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise GroupFileError(f"{path}: larger than {max_bytes:,} bytes: not a group file "
                             "(one line 'id,group' per video or clip)")
    return data


def _rows(path: Path, text: str) -> list[tuple[int, str, str]]:
    """The data rows (line number, id, group) after the header; comments and blank lines skipped."""
    rows, header_seen = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            fields = [f.strip() for f in next(csv.reader(io.StringIO(stripped)))]
        except csv.Error as exc:
            raise GroupFileError(f"{path}: line {number}: not CSV ({exc})") from None
        if not header_seen:
            if tuple(f.lower() for f in fields) != GROUP_HEADER:
                raise GroupFileError(f"{path}: line {number}: expected the header 'id,group', found "
                                     f"{stripped[:60]!r}; the first line that is not a comment names the columns")
            header_seen = True
            continue
        if len(fields) != 2:
            raise GroupFileError(f"{path}: line {number}: {len(fields)} fields, expected 2 (id,group)")
        rows.append((number, *_checked_row(path, number, *fields)))
    if not header_seen:
        raise GroupFileError(f"{path}: empty: no header 'id,group' and no rows")
    if not rows:
        raise GroupFileError(f"{path}: has the header but no rows: add one line 'id,group' per video or clip")
    return rows


def _checked_row(path: Path, number: int, ident: str, group: str) -> tuple[str, str]:
    where = f"{path}: line {number}"
    if not ident:
        raise GroupFileError(f"{where}: the id is empty; give a video id or a clip name")
    if not group:
        raise GroupFileError(f"{where}: the group of {ident[:60]!r} is empty; give a short label")
    if not _ID.match(ident) or not ident.isprintable():
        raise GroupFileError(f"{where}: id {ident[:60]!r} holds a space, comma or control character; a video id or clip name has none")
    if len(group) > MAX_GROUP_LENGTH or not group.isprintable():
        raise GroupFileError(f"{where}: group {group[:60]!r} is not a short printable label "
                             f"(at most {MAX_GROUP_LENGTH} characters)")
    return ident, group


def _video_of(ident: str) -> str:
    return video_id(ident) if _CLIP.match(ident) else ident


def read_groups(path: str | Path, *, max_bytes: int = MAX_GROUP_FILE_BYTES) -> dict[str, str]:
    """The group file at ``path`` (format in the module docstring): ``{id: group}``, ids as written.

    Raises ``GroupFileError`` naming the file and line for anything malformed: missing header,
    wrong number of fields, an empty id or group, a video given two groups (by two rows, or
    through its clips), not UTF-8, larger than ``max_bytes``, no rows.
    """
    path = Path(path)
    rows = _rows(path, _decode(path, _read_bytes(path, max_bytes)))
    groups: dict[str, str] = {}
    by_video: dict[str, tuple[str, int]] = {}
    for number, ident, group in rows:
        vid = _video_of(ident)
        if vid in by_video and by_video[vid][0] != group:
            first_group, first_line = by_video[vid]
            raise GroupFileError(f"{path}: line {number}: video {vid!r} is {group!r} here but {first_group!r} on "
                                 f"line {first_line}; a person belongs to one group")
        by_video.setdefault(vid, (group, number))
        groups[ident] = group
    return groups


def write_groups(path: str | Path, groups: Mapping[str, str]) -> None:
    """Write ``{id: group}`` as a group file (atomically), checked as ``read_groups`` would."""
    path = Path(path)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(GROUP_HEADER)
    for number, (ident, group) in enumerate(groups.items(), start=2):
        writer.writerow(_checked_row(path, number, str(ident), str(group)))
    write_atomic(path, lambda f: f.write(buf.getvalue().encode("utf-8")))


def code_groups(codes: Mapping[str, Any], names: Mapping[int, str]) -> dict[str, str]:
    """Map coded annotations ``{id: code}`` to labels with ``names`` (``GENDER``, ``ETHNICITY``).

    Codes may be ints or their text (``"2"``, ``2.0``); a code ``names`` lacks is refused.
    """
    out = {}
    for ident, code in codes.items():
        try:
            key = int(float(code))
        except (TypeError, ValueError):
            key = None
        if key not in names:
            raise ValueError(f"{ident!r} has code {code!r}; known codes: "
                             + ", ".join(f"{k} = {v}" for k, v in names.items()))
        out[str(ident)] = names[key]
    return out


def groups_for_clips(names: Sequence[str], groups: Mapping[str, str]) -> list[str | None]:
    """Each clip's group: its own row in ``groups`` first, else its video's (``video_id``), else None."""
    out: list[str | None] = []
    for name in names:
        base = Path(str(name)).name
        out.append(groups[base] if base in groups else groups.get(video_id(base)))
    return out


# ----------------------------------------------------------------------------- the audit

#: Per-group figures of ``audit_by_group``.
GROUP_METRICS: tuple[str, ...] = ("mae", "signed_error", "pearson_r", "mean_prediction", "mean_label")
#: Gaps (group - reference) of ``audit_by_group``.
GAP_METRICS: tuple[str, ...] = ("mean_prediction", "mean_label", "signed_error", "mae")


def _group_figures(sums: np.ndarray, center: np.ndarray) -> dict[str, np.ndarray]:
    """The per-group figures from summed statistics ``[..., 9, n_traits]`` (see ``metrics._video_sums``)."""
    m = _metrics_from_sums(sums, False)
    n = sums[..., 0, :]
    mean_t, mean_p = sums[..., 3, :] / n, sums[..., 4, :] / n  # both shifted by ``center``
    return {"mae": m["mae"], "signed_error": mean_p - mean_t, "pearson_r": m["pearson_r"],
            "mean_prediction": mean_p + center, "mean_label": mean_t + center}


def _stratified_counts(video_group: np.ndarray, n_groups: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n_videos]`` counts: within each group, as many draws as it has videos."""
    counts = np.zeros((resamples, len(video_group)))
    # One independent stream per group, fixed by ``seed`` and the group's position.
    seeds = np.random.SeedSequence(seed).generate_state(n_groups)
    for g in range(n_groups):
        members = np.flatnonzero(video_group == g)
        counts[:, members] = resample_counts(len(members), resamples, int(seeds[g]))
    return counts


def _group_order(names: list[str], n_videos: list[int], reference: str | None) -> list[str]:
    if reference is None:
        # The largest group; a tie goes to the name first in sorted order.
        reference = min(zip(names, n_videos), key=lambda x: (-x[1], x[0]))[0]
    if reference not in names:
        raise ValueError(f"reference group {reference!r} is not among the groups ({', '.join(names)})")
    return [reference] + sorted(n for n in names if n != reference)


def _assign(video_ids: Sequence[Any], groups: Sequence[Any], n: int) -> tuple[np.ndarray, list[str]]:
    """Clips kept (those with a group) and each kept clip's group as text; a video with two groups is refused."""
    ids, gs = [str(v) for v in video_ids], list(groups)
    if len(gs) != n:
        raise ValueError(f"{len(gs)} groups for {n} clips: give one group (or None) per clip "
                         "(helpers.audit.groups_for_clips)")
    seen: dict[str, str] = {}
    for vid, g in zip(ids, gs):
        if g is None:
            continue
        if seen.setdefault(vid, str(g)) != str(g):
            raise ValueError(f"video {vid!r} has clips in groups {seen[vid]!r} and {str(g)!r}: "
                             "a person belongs to one group")
    keep = np.array([g is not None for g in gs], dtype=bool)
    return keep, [str(g) for g in gs if g is not None]


def _checked_arrays(y_true: Any, y_pred: Any, video_ids: Sequence[Any],
                    traits: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    t, p = _pair(y_true, y_pred)
    if len(traits) != t.shape[1]:
        raise ValueError(f"{len(traits)} trait names for {t.shape[1]} columns")
    ids = list(video_ids)
    if len(ids) != len(t):
        raise ValueError(f"{len(ids)} video ids for {len(t)} clips: give one video id per clip "
                         "(helpers.dataset.video_id of each clip name)")
    return t, p, ids


def _people(codes: np.ndarray, n_videos: int,
            kept_groups: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    """(group names sorted, each clip's group index, each video's group index, videos per group)."""
    group_names = sorted(set(kept_groups))
    if len(group_names) < 2:
        raise ValueError(f"only one group ({group_names[0]!r}) among the clips: an audit compares >= 2 groups")
    clip_group = np.array([group_names.index(g) for g in kept_groups])
    video_group = np.zeros(n_videos, dtype=int)
    video_group[codes] = clip_group
    sizes = [int((video_group == g).sum()) for g in range(len(group_names))]
    for name, size in zip(group_names, sizes):
        if size < 2:
            raise ValueError(f"group {name!r} has {size} video: too few people for an interval (need >= 2)")
    return group_names, clip_group, video_group, sizes


def _resampled(t: np.ndarray, p: np.ndarray, codes: np.ndarray, n_videos: int, video_group: np.ndarray,
               group_names: list[str], resamples: int, seed: int) -> tuple[dict, dict]:
    """Per group the point figures ``{metric: [n_traits]}`` and the resampled ``{metric: [B, n_traits]}``."""
    counts = _stratified_counts(video_group, len(group_names), resamples, seed)
    sums = _video_sums(t, p, codes, n_videos, None)
    flat = sums.reshape(n_videos, -1)
    center = t.mean(axis=0)
    point, boot = {}, {}
    for g, name in enumerate(group_names):
        members = video_group == g
        point[name] = _group_figures(flat[members].sum(axis=0).reshape(sums.shape[1:]), center)
        boot[name] = _group_figures((counts[:, members] @ flat[members]).reshape((resamples,) + sums.shape[1:]),
                                    center)
    return point, boot


def audit_by_group(y_true: Any, y_pred: Any, video_ids: Sequence[Any], groups: Sequence[str | None], *,
                   reference: str | None = None, against: str = "labels", resamples: int = 2000, seed: int = 0,
                   level: float = 0.95, traits: Sequence[str] = TRAITS) -> dict[str, Any]:
    """Per group the errors, and per group the gaps to ``reference``, each with a by-person interval.

    ``y_true``: what the predictions are scored against, ``[n_clips, n_traits]`` (the rated labels,
    or on the demo the true scores; ``against`` names it); ``video_ids`` and ``groups``: one per clip
    (a clip whose group is None is left out and counted in ``n_unassigned``). ``reference``: the
    group the others are compared with; by default the one with the most videos. Every figure has
    a ``level`` percentile interval from ``resamples`` stratified cluster-bootstrap resamples
    (videos drawn within each group, ``seed``). Needs >= 2 groups, each with >= 2 videos. With few
    people in a group the percentile intervals run short: with 12 people in the smaller group a 95 %
    gap interval covered a planted shift in 86 of 100 simulated audits (tests/test_audit.py).
    Returns a JSON-ready dict (nan as None)::

        {"against", "n_clips", "n_videos", "n_unassigned", "reference", "groups": [reference, ...],
         "resamples", "seed", "level", "traits": [...],
         "per_group": {group: {"n_clips", "n_videos",
                               "traits": {trait: {metric: {"estimate", "low", "high"}}}}},
         "gaps": {group: {trait: {metric: {"estimate", "low", "high"}}}}}   # group - reference

    Per-group metrics: ``GROUP_METRICS`` (``signed_error`` = mean of prediction - label); gaps:
    ``GAP_METRICS``, for every group but the reference.
    """
    _check_level(level)
    t, p, ids = _checked_arrays(y_true, y_pred, video_ids, traits)
    keep, kept_groups = _assign(ids, groups, len(t))
    t, p, ids = t[keep], p[keep], [v for v, k in zip(ids, keep) if k]
    if len(t) == 0:
        raise ValueError("no clip has a group: check the group file covers these clips' videos")
    codes, n_videos = _video_codes(ids, len(t))
    group_names, clip_group, video_group, sizes = _people(codes, n_videos, kept_groups)
    order = _group_order(group_names, sizes, reference)
    point, boot = _resampled(t, p, codes, n_videos, video_group, group_names, resamples, seed)

    def cell(est: np.ndarray, samples: np.ndarray, i: int) -> dict[str, float | None]:
        return _interval(est[i], samples[:, i], level)

    per_group = {
        name: {"n_clips": int((clip_group == group_names.index(name)).sum()),
               "n_videos": sizes[group_names.index(name)],
               "traits": {trait: {m: cell(point[name][m], boot[name][m], i) for m in GROUP_METRICS}
                          for i, trait in enumerate(traits)}}
        for name in order
    }
    ref = order[0]
    gaps = {
        name: {trait: {m: cell(point[name][m] - point[ref][m], boot[name][m] - boot[ref][m], i)
                       for m in GAP_METRICS}
               for i, trait in enumerate(traits)}
        for name in order[1:]
    }
    return {"against": against, "n_clips": int(len(t)), "n_videos": n_videos,
            "n_unassigned": int((~keep).sum()), "reference": ref, "groups": order,
            "resamples": int(resamples), "seed": int(seed), "level": float(level), "traits": list(traits),
            "per_group": per_group, "gaps": gaps}


def audit_predictions(names: Sequence[str], y_true: Any, y_pred: Any, groups: Mapping[str, str],
                      **kwargs: Any) -> dict[str, Any]:
    """``audit_by_group`` of clips named ``names`` (as ``helpers.training.evaluate`` returns them)
    with groups from a group file's dict (``read_groups``); ``kwargs`` go to ``audit_by_group``."""
    names = [str(n) for n in names]
    return audit_by_group(y_true, y_pred, [video_id(n) for n in names], groups_for_clips(names, groups),
                          **kwargs)


def _signed(cell: Mapping[str, float | None]) -> str:
    return interval_text(cell, signed=True)


def excludes_zero(cell: Mapping[str, float | None]) -> bool:
    """Whether an interval ``{"estimate", "low", "high"}`` lies wholly on one side of 0."""
    low, high = cell.get("low"), cell.get("high")
    return low is not None and high is not None and (low > 0 or high < 0)


def format_audit(rep: Mapping[str, Any]) -> str:
    """An ``audit_by_group`` dict as text: per trait a row per group, then each gap to the reference.

    A gap whose interval excludes 0 is marked ``*``.
    """
    w, ws = 21, 25
    ref = rep["reference"]
    lines = [f"audit against {rep['against']}: {rep['n_clips']} clips of {rep['n_videos']} videos in "
             f"{len(rep['groups'])} groups (reference {ref!r})"
             + (f"; {rep['n_unassigned']} clips without a group left out" if rep["n_unassigned"] else "")]
    head = (f"{'trait':<18}{'group':<12}{'videos':>7}  {'MAE':<{w}}{'signed error':<{ws}}{'r':<{w}}"
            "mean prediction")
    lines += [head, "-" * len(head)]
    for trait in rep["traits"]:
        for k, name in enumerate(rep["groups"]):
            row, g = rep["per_group"][name]["traits"][trait], rep["per_group"][name]
            lines.append(f"{trait if k == 0 else '':<18}{name[:11]:<12}{g['n_videos']:>7}  "
                         f"{interval_text(row['mae']):<{w}}{_signed(row['signed_error']):<{ws}}"
                         f"{interval_text(row['pearson_r']):<{w}}{interval_text(row['mean_prediction'])}")
        for name in rep["groups"][1:]:
            gap = rep["gaps"][name][trait]
            marks = {m: "*" if excludes_zero(gap[m]) else " " for m in GAP_METRICS}
            lines.append(f"{'':<18}gap {name[:9]} - {ref[:9]}: prediction {_signed(gap['mean_prediction'])}"
                         f"{marks['mean_prediction']} label {_signed(gap['mean_label'])}{marks['mean_label']} "
                         f"signed error {_signed(gap['signed_error'])}{marks['signed_error']}")
    lines.append(f"signed error = prediction - {rep['against']}; {rep['level']:.0%} intervals from "
                 f"{rep['resamples']} resamples of the videos within each group (seed {rep['seed']}); "
                 "* = the gap's interval excludes 0")
    return "\n".join(lines)
