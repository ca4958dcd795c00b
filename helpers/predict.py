"""Score new clips with a trained run: one model load, one row per clip, never a number without a face.

``predict_clips(paths, run_dir)`` takes files and folders (folders are searched for clips as
``prepare`` searches a dataset), samples and crops each clip's faces with the run's own
settings (frames, crop size and the face detector its cache was prepared with), and returns
one ``ClipPrediction`` per clip:

- ``scored``: at least one usable face frame; ``scores`` holds the five traits. A clip with
  fewer usable frames than ``FEW_USABLE_SHARE`` of those sampled carries a ``warning``.
- ``no_face``: no usable face in any sampled frame; ``scores`` is None and ``error`` says so.
  (A model fed an all-False mask still returns numbers; they would describe nobody.)
- ``unreadable``: the file could not be decoded; ``error`` names the cause.

``run_provenance(run_dir)`` says what the model was trained on and how it scored, so that
every output can put the scores in context before showing them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from helpers import TRAITS

#: A scored clip with fewer usable frames than this share of the sampled ones is flagged:
#: its scores rest on a handful of crops.
FEW_USABLE_SHARE = 0.25

#: Said with every prediction, whatever the model (the dataset's authors warn against
#: judging people with such models).
SCORES_MEANING = (
    "Apparent personality is how viewers rated strangers in short clips, not a measure of the person: "
    "do not use these scores to make decisions about people.")

#: Said when the run was trained on the synthetic demo data.
DEMO_WARNING = (
    "This model was trained on the synthetic demo data: its scores follow the demo's planted factors "
    "(lighting, contrast, sharpness, a shadow, how fast the head rocks) and mean nothing about a real person.")

STATUSES: tuple[str, ...] = ("scored", "no_face", "unreadable")


@dataclass
class ClipPrediction:
    """What ``predict_clips`` says about one clip (see the module docstring for the statuses)."""

    clip: str
    status: str
    usable_frames: int
    sampled_frames: int
    scores: dict[str, float] | None
    warning: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``predict --json``."""
        return asdict(self)


def find_video_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and every clip found under each folder (as ``prepare`` finds clips).

    Raises ``FileNotFoundError`` naming a path that does not exist, and ``ValueError``
    naming a folder without any clip (with what was searched for).
    """
    from helpers.dataset import VIDEO_SUFFIXES, find_clips

    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            clips = sorted(find_clips(path).values())
            if not clips:
                raise ValueError(f"{path}: no clip found (searched every subfolder for files ending in "
                                 f"{', '.join(VIDEO_SUFFIXES)}); give video files or a folder holding them")
            found.extend(clips)
        elif path.exists() or path.is_symlink():
            found.append(path)  # whatever it is, predict_clip says whether it decodes
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def run_provenance(run_dir: Path) -> dict[str, Any]:
    """What the run was trained on and how it scored on its test split (``helpers.runs.read_run``)."""
    from helpers.runs import read_run

    run = read_run(run_dir)
    metrics = run.metrics
    return {
        "model": metrics.get("model"),
        "dataset": metrics.get("dataset"),
        "split_scheme": run.split_scheme,
        "test_mean_accuracy": metrics.get("mean_accuracy"),
        "train_mean_baseline": metrics.get("baseline_mean_accuracy"),
        "same_video_baseline": metrics.get("same_video_baseline_mean_accuracy"),
    }


def provenance_lines(prov: dict[str, Any]) -> list[str]:
    """Plain sentences for the top of every output: the data, the test score beside the baselines, the meaning."""
    data = {"demo": "the synthetic demo data", "first_impressions": "ChaLearn First Impressions V2"}.get(
        prov.get("dataset"), "an unrecorded dataset")
    lines = [f"model: {prov.get('model')} trained on {data}, {prov.get('split_scheme')} split scheme"]
    if prov.get("test_mean_accuracy") is not None:
        score = f"test mean accuracy {prov['test_mean_accuracy']:.4f}"
        base = [f"train-mean baseline {prov['train_mean_baseline']:.4f}"] if prov.get("train_mean_baseline") else []
        if prov.get("same_video_baseline") is not None:
            base.append(f"same-video baseline {prov['same_video_baseline']:.4f}")
        lines.append(score + (f" (against {', '.join(base)})" if base else ""))
    if prov.get("dataset") == "demo":
        lines.append(DEMO_WARNING)
    lines.append(SCORES_MEANING)
    return lines


def predict_clip(run, path: Path) -> ClipPrediction:
    """One clip's row: faces with the run's settings, then the model on the usable frames only.

    ``run``: a ``helpers.runs.Run`` with its model (``helpers.training.load_run``).
    """
    import numpy as np

    from helpers.faces import detector_from_record, video_to_faces
    from helpers.inputs import to_model_input
    from helpers.video import VideoReadError

    settings = run.settings
    detector = detector_from_record(settings.detector)  # runs that recorded none: the default
    try:
        seq = video_to_faces(path, num_frames=settings.num_frames, size=settings.size, detector=detector)
    except VideoReadError as err:
        return ClipPrediction(str(path), "unreadable", 0, 0, None, error=str(err))
    sampled, usable = len(seq), int(np.count_nonzero(seq.usable))
    if usable == 0:  # never fed to the model: an all-False mask would still give numbers
        why = "no frame to read" if sampled == 0 else f"no usable face in any of the {sampled} sampled frames"
        return ClipPrediction(str(path), "no_face", 0, sampled, None, error=why)
    faces, mask = to_model_input(seq.faces, seq.usable, settings.length, settings.padding)
    pred = np.asarray(run.model.predict_on_batch({"faces": faces[None], "mask": mask[None]}))[0]
    warning = None
    if usable < FEW_USABLE_SHARE * sampled:
        warning = f"only {usable} of {sampled} sampled frames show a usable face: scores rest on few crops"
    return ClipPrediction(str(path), "scored", usable, sampled, {t: float(v) for t, v in zip(TRAITS, pred)},
                          warning=warning)


def predict_video(video: str | Path, run_dir: Path) -> ClipPrediction:
    """One clip's ``ClipPrediction`` with the run in ``run_dir`` (its model is loaded once per process)."""
    from helpers.training import load_run

    return predict_clip(load_run(run_dir), Path(video))


def predict_clips(paths: Sequence[str | Path], run_dir: Path, progress: bool = False) -> list[ClipPrediction]:
    """One ``ClipPrediction`` per clip found in ``paths``, with one model load for all of them."""
    from helpers.training import load_run

    run = load_run(run_dir)
    videos = find_video_files(paths)
    if progress and len(videos) > 1:
        from tqdm.auto import tqdm

        videos = tqdm(videos, desc="clips", unit="clip")
    return [predict_clip(run, Path(v)) for v in videos]


def format_table(rows: Sequence[ClipPrediction]) -> str:
    """A plain-text table: clip, usable frames of sampled, five scores (or the reason there are none)."""
    heads = [t[:5] for t in TRAITS]
    width = max([len("clip")] + [len(r.clip) for r in rows])
    lines = [f"{'clip':<{width}}  {'frames':>7}  " + "  ".join(f"{h:>5}" for h in heads)]
    for r in rows:
        frames = f"{r.usable_frames}/{r.sampled_frames}"
        if r.scores is None:
            body = f"{r.status}: {r.error}"
        else:
            body = "  ".join(f"{r.scores[t]:5.3f}" for t in TRAITS)
        lines.append(f"{r.clip:<{width}}  {frames:>7}  {body}")
        if r.warning:
            lines.append(f"{'':<{width}}  {'':>7}  warning: {r.warning}")
    return "\n".join(lines)


def format_json(rows: Sequence[ClipPrediction]) -> str:
    """``predict --json``: the list of clip objects (the CLI prints the provenance sentences on stderr)."""
    return json.dumps([r.as_json() for r in rows], indent=2)


def format_csv(rows: Sequence[ClipPrediction], prov: dict[str, Any]) -> str:
    """``predict --csv``: the sentences as ``#`` comment lines, then one row per clip."""
    out = io.StringIO()
    for line in provenance_lines(prov):
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["clip", "status", "usable_frames", "sampled_frames", *TRAITS, "warning", "error"])
    for r in rows:
        scores = [f"{r.scores[t]:.6f}" for t in TRAITS] if r.scores else [""] * len(TRAITS)
        writer.writerow([r.clip, r.status, r.usable_frames, r.sampled_frames, *scores, r.warning or "", r.error or ""])
    return out.getvalue()
