"""The notebook series' shared data folders and settings.

Each notebook runs on its own (Colab opens one at a time), so what it needs from an
earlier one (demo clips, prepared cache, trained model) comes from the ``ensure_*``
functions here: reused from ``data/`` when present, rebuilt when not. Executing the
notebooks is :mod:`helpers.notebooks`.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import repository

#: Settings shared by the notebooks, so that each can rebuild what an earlier one made.
DEMO_CLIPS = 200
DEMO_SEED = 0
#: Clips of the demo with person groups (notebook 08): enough people for an audit by group. With
#: 600, the by-video test split holds 39 people, 12 of group B; with 200 it would hold 9, 1 of B.
GROUPS_DEMO_CLIPS = 600
#: Epochs of 08's training: three times the clips of the default demo, so fewer passes (still more
#: steps than 05's 40 epochs) keep it near a minute on 2 cores.
GROUPS_EPOCHS = 20
NUM_FRAMES = 32  # frames sampled per clip by prepare
LENGTH = 32  # sequence length the model sees
SIZE = 48
#: The folders of ``data/`` that the series builds (what a cold benchmark deletes first).
BUILT_FOLDERS = ("demo", "cache", "runs", "demo_groups", "cache_groups")
#: How the notebooks' runs assign clips to splits: by video (person), the honest measure on new people.
SPLIT_SCHEME = "by-video"


def shown(path: Path | str) -> str:
    """``path`` as a reader should see it: relative to the repository (``data/demo``), else as given.

    Outputs committed with the notebooks must not carry the machine's folders.
    """
    path = Path(path)
    try:
        return path.resolve().relative_to(repository.root().resolve()).as_posix()
    except ValueError:
        return str(path)


def data_dir() -> Path:
    """``data/`` in the repository: where the series keeps what it builds."""
    return repository.root() / "data"


def _suffix(groups: bool) -> str:
    """Folder name suffix of the demo built with person groups (notebook 08), beside the plain one."""
    return "_groups" if groups else ""


def ensure_demo_data(root: Path | None = None, groups: bool = False) -> Path:
    """The demo dataset folder (``data/demo``; with ``groups``, ``data/demo_groups``), built when missing."""
    from helpers.demo import DEMO_VERSION, FACTORS_FILE, load_demo_factors, make_demo_dataset

    folder = (root or data_dir()) / f"demo{_suffix(groups)}"
    n_clips = GROUPS_DEMO_CLIPS if groups else DEMO_CLIPS
    current = (folder / "annotation_test.pkl").is_file() and (folder / FACTORS_FILE).is_file()
    if current:
        factors = load_demo_factors(folder)
        current = factors.get("version") == DEMO_VERSION and ("person_groups" in factors) == groups \
            and factors.get("n_clips") == n_clips
    if not current:  # missing, or built by an older version of helpers.demo
        make_demo_dataset(folder, n_clips=n_clips, seed=DEMO_SEED, groups=groups)
    return folder


def ensure_cache(root: Path | None = None, workers: int | None = None, groups: bool = False) -> Path:
    """The prepared cache of the demo data; ``prepare`` resumes, so this is quick when done before."""
    from helpers.cache import CacheFileError, read_manifest
    from helpers.demo import load_demo_factors
    from helpers.prepare import prepare

    root = root or data_dir()
    source = ensure_demo_data(root, groups)
    cache = root / f"cache{_suffix(groups)}"
    try:
        manifest = read_manifest(cache)
        # Complete, and of these demo clips (not of a demo dataset built before).
        complete = bool(manifest.get("complete")) and set(manifest["clips"]) == {
            c["name"] for c in load_demo_factors(source)["clips"]}
    except (FileNotFoundError, CacheFileError):  # none yet, damaged, or of an older version
        complete = False
    # An interrupted prepare leaves a manifest marked incomplete: run it again, it resumes.
    if not complete:
        prepare(source, cache, num_frames=NUM_FRAMES, size=SIZE, workers=workers)
    return cache


def ensure_trained_run(root: Path | None = None, groups: bool = False, **train_kwargs) -> Path:
    """A run folder with the default model trained on the demo cache, by video (trained when missing).

    Trained again when the folder is of an older version or used another split scheme or number
    of epochs. ``groups``: on the demo with person groups (``runs/light_groups``), for
    ``GROUPS_EPOCHS``.
    """
    from helpers.training import DEFAULT_EPOCHS, RUN_VERSION, train

    root = root or data_dir()
    run = root / "runs" / f"light{_suffix(groups)}"
    train_kwargs.setdefault("split_scheme", SPLIT_SCHEME)
    train_kwargs.setdefault("epochs", GROUPS_EPOCHS if groups else DEFAULT_EPOCHS)
    metrics = run / "metrics.json"
    recorded = json.loads(metrics.read_text(encoding="utf-8")) if metrics.is_file() else {}
    wanted = {"version": RUN_VERSION, "split_scheme": train_kwargs["split_scheme"], "epochs": train_kwargs["epochs"]}
    if any(recorded.get(key) != value for key, value in wanted.items()):
        train(ensure_cache(root, groups=groups), run, length=LENGTH, **train_kwargs)
    return run
