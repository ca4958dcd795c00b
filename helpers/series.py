"""The notebook series: shared data folders, and executing the notebooks in place.

Each notebook runs on its own (Colab opens one at a time), so what it needs from an
earlier one (demo clips, prepared cache, trained model) comes from the ``ensure_*``
functions here: reused from ``data/`` when present, rebuilt when not.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

#: Settings shared by the notebooks, so that each can rebuild what an earlier one made.
DEMO_CLIPS = 200
DEMO_SEED = 0
NUM_FRAMES = 32  # frames sampled per clip by prepare
LENGTH = 32  # sequence length the model sees
SIZE = 48
#: How the notebooks' runs assign clips to splits: by video (person), the honest measure on new people.
SPLIT_SCHEME = "by-video"


def repo_root() -> Path:
    """The repository folder (the parent of ``helpers/``)."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """``data/`` in the repository: where the series keeps what it builds."""
    return repo_root() / "data"


def ensure_demo_data(root: Path | None = None) -> Path:
    """The demo dataset folder, built (about a minute) when it is not there yet."""
    from helpers.demo import DEMO_VERSION, FACTORS_FILE, load_demo_factors, make_demo_dataset

    folder = (root or data_dir()) / "demo"
    current = (folder / "annotation_test.pkl").is_file() and (folder / FACTORS_FILE).is_file() \
        and load_demo_factors(folder).get("version") == DEMO_VERSION
    if not current:  # missing, or built by an older version of helpers.demo
        make_demo_dataset(folder, n_clips=DEMO_CLIPS, seed=DEMO_SEED)
    return folder


def ensure_cache(root: Path | None = None, workers: int | None = None) -> Path:
    """The prepared cache of the demo data; ``prepare`` resumes, so this is quick when done before."""
    from helpers.cache import CacheFileError, read_manifest
    from helpers.demo import load_demo_factors
    from helpers.prepare import prepare

    root = root or data_dir()
    source = ensure_demo_data(root)
    cache = root / "cache"
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


def ensure_trained_run(root: Path | None = None, **train_kwargs) -> Path:
    """A run folder with the default model trained on the demo cache, by video (trained when missing).

    Trained again when the folder is of an older version or used another split scheme.
    """
    from helpers.training import RUN_VERSION, train

    root = root or data_dir()
    run = root / "runs" / "light"
    train_kwargs.setdefault("split_scheme", SPLIT_SCHEME)
    metrics = run / "metrics.json"
    recorded = json.loads(metrics.read_text(encoding="utf-8")) if metrics.is_file() else {}
    if recorded.get("version") != RUN_VERSION or recorded.get("split_scheme") != train_kwargs["split_scheme"]:
        train(ensure_cache(root), run, length=LENGTH, **train_kwargs)
    return run


@dataclass
class NotebookRun:
    """What executing one notebook took."""

    path: Path
    seconds: float
    kernel_peak_rss_mb: float | None


def _peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process, in MB; None where /proc is missing."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def execute_notebook(path: Path, timeout: int = 900) -> NotebookRun:
    """Run every cell of ``path`` in a fresh kernel and save the outputs in place."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    peak = None
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        process = getattr(getattr(client.km, "provisioner", None), "process", None)
        if process is not None:
            peak = _peak_rss_mb(process.pid)
    seconds = time.perf_counter() - start
    # Progress bars arrive as hundreds of "\r" updates: keep only their final state.
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    nbformat.write(nb, path)
    return NotebookRun(path, seconds, peak)


def notebook_paths(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``), in order."""
    folder = folder or repo_root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def execute_series(paths: list[Path], timeout: int = 900) -> list[NotebookRun]:
    """Execute notebooks in order, in place, printing one line each (time, kernel peak RSS)."""
    runs = []
    for path in paths:
        run = execute_notebook(path, timeout=timeout)
        peak = f"{run.kernel_peak_rss_mb:.0f} MB" if run.kernel_peak_rss_mb else "n/a"
        print(f"{path.name:<40} {run.seconds:6.1f} s   kernel peak RSS {peak}", flush=True)
        runs.append(run)
    return runs


def record_versions(path: Path) -> dict[str, str]:
    """Write the versions of the packages that produced the committed outputs to ``path`` (JSON)."""
    import importlib.metadata as md
    import platform

    names = ["tensorflow", "keras", "numpy", "opencv-python-headless", "scikit-learn", "matplotlib",
             "nbval", "nbclient", "ipykernel", "tqdm"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    Path(path).write_text(json.dumps(versions, indent=2) + "\n", encoding="utf-8")
    return versions
