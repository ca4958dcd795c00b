"""Executing the notebooks in place, and checking what their saved outputs hold.

Each notebook runs in a fresh kernel (over IPC sockets, so it prints no TCP warning);
progress-bar widgets are replaced by their final text, and the outputs are checked for
tool chatter and machine paths before they are committed.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.repository import root
from helpers.series import shown


@dataclass
class NotebookRun:
    """What executing one notebook took, and what its outputs should not contain."""

    path: Path
    seconds: float
    kernel_peak_rss_mb: float | None
    problems: list[str] = field(default_factory=list)


class OutputCheckError(ValueError):
    """Executed notebooks whose outputs hold tool chatter or machine paths."""


#: What must never be in committed outputs: tool chatter, and folders of the machine that ran them.
OUTPUT_PROBLEMS = {
    "absl/TensorFlow log line": re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|^\d{4}-\d\d-\d\d [\d:.]+: [IWEF] \S+\.cc:\d+\]"),
    "absl start-up warning": re.compile(r"absl::"),
    "TensorFlow retracing warning": re.compile(r"triggered tf\.function retracing"),
    "CUDA probe": re.compile(r"cudart_stub|cuInit"),
    "tqdm without ipywidgets": re.compile(r"TqdmWarning"),
    "FFmpeg message": re.compile(r"moov atom|\[mov,mp4"),
    "ZMQ warning": re.compile(r"Kernel is running over TCP"),
    "machine path": re.compile(r"(?<![\w.~])/(?:tmp|root|home|work|Users|private/var|var/folders|content)/"),
}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _output_text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    return "\n".join(str(data.get(key, "")) for key in ("text/plain", "text/html", "text/markdown"))


def output_problems(nb: dict) -> list[str]:
    """Every chatter line, machine path or widget-view leftover in a notebook's outputs, as text."""
    problems = []
    here = str(root())  # wherever this checkout lives, its folder is the machine's
    if "widgets" in nb.get("metadata", {}):
        problems.append("notebook metadata keeps widget state")
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                problems.append(f"cell {index}: widget view (shows as an error once the kernel is gone)")
            for line in _output_text(output).splitlines():
                what = next((what for what, pattern in OUTPUT_PROBLEMS.items() if pattern.search(line)), None)
                if what is None and here in line:
                    what = "machine path"
                if what:
                    problems.append(f"cell {index}: {what}: {line.strip()[:120]}")
    return problems


def _widget_text(model_id: str, state: dict) -> str | None:
    """The final text of a tqdm bar (an HBox of HTML, FloatProgress, HTML) from saved widget state."""
    box = state.get(model_id, {}).get("state", {})
    children = [state.get(child.removeprefix("IPY_MODEL_"), {}).get("state", {}) for child in box.get("children", [])]
    if len(children) != 3 or "max" not in children[1]:
        return None
    done = children[1].get("value", 0) / (children[1]["max"] or 1)
    bar = "█" * int(round(10 * min(max(done, 0.0), 1.0)))
    # tqdm pads with figure spaces (U+2007): plain spaces read the same in any viewer.
    left, right = (html.unescape(children[i].get("value", "")).replace("\u2007", " ").strip() for i in (0, 2))
    return f"{left}|{bar:<10}|{right}".strip()


def finalise_widgets(nb: dict) -> dict:
    """Replace progress-bar widget views by their final text, and drop the saved widget state.

    A widget view only renders while its kernel runs; a committed notebook would show an
    error or nothing. Views that are not tqdm bars keep their plain-text form.
    """
    metadata = nb.get("metadata", {})
    state = metadata.pop("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":  # markdown and raw cells have no outputs (not even an empty list)
            cell.pop("outputs", None)
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                text = _widget_text(data[WIDGET_VIEW].get("model_id", ""), state)
                if text is None and data.get("text/plain", "").strip() == "":
                    continue
                output["data"] = {"text/plain": text if text is not None else data["text/plain"]}
            kept.append(output)
        cell["outputs"] = kept
    return nb


def _peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process, in MB; None where /proc is missing."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def ipc_kernel_manager(kernel_name: str = "python3"):
    """A kernel manager whose kernel talks over local IPC sockets in Jupyter's runtime folder.

    Over TCP, ipykernel warns on every start that traffic is unencrypted; over IPC it has
    no reason to. The socket path must be absolute: kernel and client run in different folders.
    """
    import uuid

    from jupyter_client.manager import KernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(parents=True, exist_ok=True)
    # debugpy's note about frozen modules is not for readers either.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return KernelManager(kernel_name=kernel_name, transport="ipc", ip=str(runtime / f"kernel-{uuid.uuid4().hex[:12]}-ipc"))


def set_kernel_metadata(nb: dict, display_name: str, language_info: dict) -> dict:
    """Write the kernel's metadata as JupyterLab does when it starts the kernel.

    JupyterLab writes the kernel spec and the kernel's ``language_info`` into a notebook it
    opens; where they already agree, opening and saving leaves the file as it was.
    """
    nb["metadata"]["kernelspec"] = {"display_name": display_name, "language": language_info["name"],
                                    "name": "python3"}
    nb["metadata"]["language_info"] = dict(language_info)
    return nb


def execute_notebook(path: Path, timeout: int = 900) -> NotebookRun:
    """Run every cell of ``path`` in a fresh kernel and save the outputs in place.

    The returned run lists what its outputs should not contain (:func:`output_problems`).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # timings an earlier run recorded
        cell.metadata.pop("execution", None)
    # IPC sockets: the kernel talks to us through local files, not TCP, so it has no reason to
    # warn about unencrypted TCP; debugpy's frozen-modules note is not for readers either.
    km = ipc_kernel_manager()
    # No per-cell timing metadata: JupyterLab does not record it by default, so a reader's save
    # would remove it, and every re-execution would change it.
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    peak = None
    try:
        with client.setup_kernel():
            info = client.wait_for_reply(client.kc.kernel_info())
            set_kernel_metadata(nb, km.kernel_spec.display_name, info["content"]["language_info"])
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            client.set_widgets_metadata()  # final state of progress bars, for finalise_widgets
            process = getattr(getattr(client.km, "provisioner", None), "process", None)
            if process is not None:
                peak = _peak_rss_mb(process.pid)
    finally:
        # nbclient shuts down only the kernels of managers it made itself: without this, every
        # notebook's kernel would stay alive (and hold its memory) until the whole series ends.
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    seconds = time.perf_counter() - start
    # Progress bars arrive as hundreds of "\r" updates: keep only their final state.
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    finalise_widgets(nb)
    nbformat.write(nb, path)
    return NotebookRun(path, seconds, peak, output_problems(nb))


def notebook_paths(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``), in order."""
    folder = folder or root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def execute_series(paths: list[Path], timeout: int = 900) -> list[NotebookRun]:
    """Execute notebooks in order, in place, printing one line each (time, kernel peak RSS).

    Raises :class:`OutputCheckError` at the end, listing them, if any output holds chatter
    or a machine path (the notebooks are saved all the same, to be looked at).
    """
    runs = []
    for path in paths:
        run = execute_notebook(path, timeout=timeout)
        peak = f"{run.kernel_peak_rss_mb:.0f} MB" if run.kernel_peak_rss_mb else "n/a"
        flag = f"   {len(run.problems)} output problems" if run.problems else ""
        print(f"{path.name:<40} {run.seconds:6.1f} s   kernel peak RSS {peak}{flag}", flush=True)
        runs.append(run)
    problems = [f"{shown(run.path)}: {p}" for run in runs for p in run.problems]
    if problems:
        raise OutputCheckError("outputs hold chatter or machine paths; silence them at the source:\n  "
                               + "\n  ".join(problems))
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
