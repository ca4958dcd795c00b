"""The run folder's format: the one module that reads and writes it (``helpers.training`` trains into it).

Layout of a run folder (``train CACHE --out RUN``)::

    RUN/
      model.keras    # the Keras model (``helpers.models.load_model``; ``helpers.training.load_run``)
      metrics.json   # version, settings, split scheme, test/validation report, run facts
      splits.json    # split_scheme, split_seed, clips: clip name -> split (the run's own assignment)
      history.json   # per-epoch loss, val_loss, mae, val_mae

``read_run(run_dir)`` checks a folder and returns a ``Run`` record (its ``RunSettings``, split
assignment and metrics); every problem a user can cause (a missing file, garbage JSON, an
older version, settings of the wrong type) is a ``RunFolderError`` naming the folder or file
and what to do. ``staged_run(run_dir)`` makes re-training atomic: the new run is written into
a hidden sibling folder (``.RUN.partial-<pid>-<random>``) made before any work starts (so an
unwritable ``--out`` is found at once) and renamed into place only when every file is
written; the old run is first moved aside (``.RUN.old-...``) and then deleted. An interrupted
train leaves the old run whole; the next ``staged_run`` of the same folder removes what a
killed one left behind (and puts back an old run caught between the two renames).

No TensorFlow here: ``predict``'s and ``explain``'s checks of a run start in a second.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import TRAITS
from helpers.atomic import write_json_atomic
from helpers.sequences import STRATEGIES

#: Version of a run folder; ``read_run`` refuses others. 3: run folders record their split
#: assignment (``splits.json``). 4: masks are packed (usable frames first, padding at the
#: end: ``helpers.inputs.to_model_input``), so a model of version 3 saw other inputs;
#: ``metrics.json`` holds intervals that resample videos and the calibration.
RUN_VERSION = 4
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
SPLITS_FILE = "splits.json"
HISTORY_FILE = "history.json"

_PARTIAL, _OLD = "partial", "old"


class RunFolderError(ValueError):
    """A run folder that is missing, damaged or of another version; the message names it and what to do."""


class RunWriteError(OSError):
    """A run folder that could not be written (read-only, disk full); the message names the path."""


def _retrain(run_dir: Path) -> str:
    return f"re-run `python -m helpers train CACHE --out {run_dir}`"


@dataclass(frozen=True)
class RunSettings:
    """What a run's model needs its input to be: the same preprocessing for every later use."""

    length: int                 #: sequence length the model takes (``train --length``)
    size: int                   #: face crop size in pixels (the cache's)
    num_frames: int             #: frames sampled per clip (the cache's ``--num-frames``)
    padding: str                #: ``helpers.sequences.Strategy``
    traits: tuple[str, ...] = TRAITS
    detector: dict | None = None  #: ``helpers.faces.detector_record`` of the cache (None: the default)

    def to_json(self) -> dict[str, Any]:
        """The ``settings`` object of ``metrics.json``."""
        return {"length": self.length, "size": self.size, "num_frames": self.num_frames,
                "padding": self.padding, "traits": list(self.traits), "detector": self.detector}

    @classmethod
    def from_json(cls, obj: Any, path: Path) -> RunSettings:
        """Checked settings from ``metrics.json`` at ``path``; ``RunFolderError`` naming it otherwise."""
        if not isinstance(obj, dict):
            raise RunFolderError(f"{path} has no 'settings' object; {_retrain(path.parent)}")
        ints = {k: obj.get(k) for k in ("length", "size", "num_frames")}
        bad = [k for k, v in ints.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        if bad or obj.get("padding") not in STRATEGIES or not isinstance(obj.get("detector"), (dict, type(None))):
            raise RunFolderError(f"{path}: 'settings' has no valid {', '.join(bad) or 'padding or detector'}; "
                                 f"{_retrain(path.parent)}")
        if list(obj.get("traits") or ()) != list(TRAITS):
            raise RunFolderError(f"{path}: the run predicts {obj.get('traits')!r:.200}, not {list(TRAITS)}; "
                                 f"{_retrain(path.parent)}")
        return cls(ints["length"], ints["size"], ints["num_frames"], obj["padding"], TRAITS, obj.get("detector"))


@dataclass(frozen=True)
class Run:
    """A run folder as ``read_run`` found it; ``model`` is set by ``helpers.training.load_run``."""

    folder: Path
    settings: RunSettings
    split_scheme: str
    split_seed: int
    assignment: dict[str, str]          #: clip name -> split of the run (``splits.json``)
    metrics: dict[str, Any]             #: the whole ``metrics.json`` (report, validation, run facts)
    model: Any = field(default=None, compare=False, repr=False)

    @property
    def model_file(self) -> Path:
        return self.folder / MODEL_FILE


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise RunFolderError(f"{path} not found: is {path.parent} a run folder written by "
                             f"`python -m helpers train`? ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFolderError(f"{path} cannot be read ({type(err).__name__}: {str(err)[:120]}); "
                             f"{_retrain(path.parent)}") from err


def read_run(run_dir: Path) -> Run:
    """The checked record of a run folder (without its model); ``RunFolderError`` naming what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        hint = _left_aside(run_dir)
        raise RunFolderError(f"{run_dir} is not a run folder" + (
            f": an interrupted train left the previous run in {hint}; rename it back to {run_dir.name}"
            if hint else ": train one with `python -m helpers train CACHE --out RUN`"))
    if not (run_dir / MODEL_FILE).is_file():
        raise RunFolderError(f"{run_dir / MODEL_FILE} not found: is {run_dir} a run folder written by "
                             "`python -m helpers train`?")
    metrics_path = run_dir / METRICS_FILE
    metrics = _read_json(metrics_path, "the run's figures")
    if not isinstance(metrics, dict) or metrics.get("version") != RUN_VERSION:
        version = metrics.get("version") if isinstance(metrics, dict) else None
        raise RunFolderError(f"{run_dir} was trained by another version of helpers (its {METRICS_FILE} has "
                             f"version {version!r:.40}, this one reads {RUN_VERSION}; an older version): "
                             f"{_retrain(run_dir)}")
    settings = RunSettings.from_json(metrics.get("settings"), metrics_path)
    splits_path = run_dir / SPLITS_FILE
    splits = _read_json(splits_path, "the run's split assignment")
    clips = splits.get("clips") if isinstance(splits, dict) else None
    if not isinstance(clips, dict) or not all(isinstance(v, str) for v in clips.values()):
        raise RunFolderError(f"{splits_path} has no 'clips' table (clip name -> split); {_retrain(run_dir)}")
    scheme, seed = splits.get("split_scheme"), splits.get("split_seed")
    if not isinstance(scheme, str) or not isinstance(seed, int):
        raise RunFolderError(f"{splits_path} has no split_scheme or split_seed; {_retrain(run_dir)}")
    return Run(run_dir, settings, scheme, seed, dict(clips), metrics)


def write_run(folder: Path, settings: RunSettings, split_scheme: str, split_seed: int,
              assignment: dict[str, str], metrics: dict[str, Any], history: dict[str, list[float]]) -> dict[str, Any]:
    """Write a run's JSON files into ``folder`` (a ``staged_run`` folder; the model is saved there by the caller).

    ``metrics`` gets ``version``, ``settings``, ``split_scheme`` and ``split_seed`` from here,
    so the format has one writer (``read_run`` is its reader). Returns what ``metrics.json`` holds.
    """
    folder = Path(folder)
    write_json_atomic(folder / HISTORY_FILE, history)
    write_json_atomic(folder / SPLITS_FILE, {"split_scheme": split_scheme, "split_seed": split_seed,
                                             "clips": assignment})
    record = {"version": RUN_VERSION, **metrics, "settings": settings.to_json(), "split_scheme": split_scheme,
              "split_seed": split_seed}
    write_json_atomic(folder / METRICS_FILE, record)  # last: a folder with it is complete
    return record


# ----------------------------------------------------------------------------- atomic replacement


def _sibling(run_dir: Path, kind: str) -> Path:
    return run_dir.with_name(f".{run_dir.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _siblings(run_dir: Path, kind: str) -> list[Path]:
    if not run_dir.parent.is_dir():
        return []
    found = run_dir.parent.glob(f".{glob.escape(run_dir.name)}.{kind}-*")
    return sorted(found, key=lambda p: p.stat().st_mtime)


def _left_aside(run_dir: Path) -> Path | None:
    """The newest old run a killed train left between its two renames, if any."""
    old = _siblings(Path(run_dir), _OLD)
    return old[-1] if old else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def tidy(run_dir: Path) -> None:
    """Remove what killed trains of ``run_dir`` left (their partial folders); put back an old run a train
    killed between its two renames left aside (``staged_run`` calls it first)."""
    for partial in _siblings(run_dir, _PARTIAL):
        pid = partial.name.rsplit("-", 2)[-2]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(partial, ignore_errors=True)
    old = _siblings(run_dir, _OLD)
    if old and not run_dir.exists():
        os.rename(old.pop(), run_dir)  # killed between the renames: the old run comes back
    for stale in old:
        shutil.rmtree(stale, ignore_errors=True)


def _make_staging(run_dir: Path) -> Path:
    staging = _sibling(run_dir, _PARTIAL)
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        tidy(run_dir)
        staging.mkdir()
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # a run folder others can read, as the umask says
    except OSError as err:
        raise RunWriteError(f"cannot write the run folder {run_dir}: {err.strerror or err} "
                            f"({err.filename or run_dir.parent}); choose another --out or fix its permissions"
                            ) from err
    return staging


def _replace(staging: Path, run_dir: Path) -> None:
    old = None
    if run_dir.exists() or run_dir.is_symlink():
        old = _sibling(run_dir, _OLD)
        os.rename(run_dir, old)
    os.rename(staging, run_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_run(run_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``run_dir`` to write a run into; it replaces ``run_dir`` when the block ends.

    Made at once (``RunWriteError`` naming the folder if it cannot be). If the block
    raises (or is interrupted), the folder is removed and ``run_dir`` is left as it was;
    an ``OSError`` (disk full, permissions) becomes a ``RunWriteError`` naming the path.
    """
    run_dir = Path(run_dir)
    staging = _make_staging(run_dir)
    try:
        yield staging
        if not (staging / METRICS_FILE).is_file():
            raise RuntimeError(f"the run written into {staging} has no {METRICS_FILE}; {run_dir} left as it was")
        _replace(staging, run_dir)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, RunWriteError):
            raise
        raise RunWriteError(f"could not write the run folder {run_dir}: {err.strerror or err} "
                            f"(at {err.filename or staging}); the previous run there, if any, is unchanged"
                            ) from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
