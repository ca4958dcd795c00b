"""Every notebook run alone, as on today's Colab: a replica of its runtime on this machine.

    python benchmarks/colab_replica.py [--work DIR] [--python python3.13] [NOTEBOOK ...]

Builds (once) a virtual environment like Colab's default runtime since 2026-08: Python
3.13, TensorFlow 2.20.0, Keras 3.13.2, numpy 2.1.3, and three OpenCV wheels installed in
this order: opencv-contrib-python 4.14.0.94, then opencv-python 5.0.0.93 and
opencv-python-headless 5.0.0.93 (so ``cv2`` is 5.0, without ``CascadeClassifier``). Then,
for each notebook, as Colab opens one at a time: the three OpenCV wheels are put back in
that order (a new Colab session starts from the same image), a fresh content folder gets a
copy of the repository (what the setup cell's ``git clone`` would fetch; no network here),
and the notebook runs top to bottom in a fresh kernel whose working folder is the content
folder, with a stand-in ``google.colab`` module imported at kernel start. Package installs
from the index are allowed, as on Colab. Prints one line per notebook (pass/fail, seconds,
what the setup cell printed) and exits non-zero if any failed. Executed copies are kept in
``WORK/executed/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLAB = {"tensorflow": "2.20.0", "keras": "3.13.2", "numpy": "2.1.3"}
OPENCV_WHEELS = ["opencv-contrib-python==4.14.0.94", "opencv-python==5.0.0.93", "opencv-python-headless==5.0.0.93"]
OTHERS = ["scikit-learn", "matplotlib", "tqdm", "ipywidgets", "ipykernel", "nbclient", "nbformat"]
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "data", "__pycache__", "*.pyc", ".ipynb_checkpoints")


def pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check", *args],
                   check=True)


def build_venv(work: Path, python: str) -> Path:
    """The Colab-like environment (built once, reused)."""
    venv = work / "venv313"
    if (venv / "bin" / "python").exists():
        return venv
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pins = work / "colab-pins.txt"
    pins.write_text("".join(f"{name}=={version}\n" for name, version in COLAB.items()))
    pip(venv, "install", *(f"{n}=={v}" for n, v in COLAB.items()), *OTHERS, "-c", str(pins))
    return venv


def restore_colab_opencv(venv: Path) -> None:
    """Uninstall every opencv* wheel, then install Colab's three in Colab's order."""
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout
    present = [line.split("==")[0] for line in listed.splitlines() if line.lower().startswith("opencv")]
    if present:
        pip(venv, "uninstall", "-y", *present)
    for wheel in OPENCV_WHEELS:
        pip(venv, "install", "--no-deps", wheel)


def stand_in_colab(work: Path) -> dict[str, str]:
    """Environment for a kernel that imports a stand-in ``google.colab`` at start."""
    package = work / "stand-in" / "google" / "colab"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""Stand-in for Colab\'s module: its presence is what notebooks test."""\n')
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-colab.py").write_text("import google.colab  # noqa: F401\n")
    return {"PYTHONPATH": str(work / "stand-in"), "IPYTHONDIR": str(work / "ipython")}


def execute_alone(notebook: Path, content: Path, out: Path, timeout: int) -> tuple[bool, str]:
    """(In the replica's Python.) Run ``notebook`` in a fresh kernel working in ``content``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(content)}})
    ok, note = True, ""
    try:
        client.execute()
    except CellExecutionError as err:
        ok = False
        note = str(err).strip().splitlines()[-1][:200]
    finally:
        nbformat.write(nb, out)
    setup = next((c for c in nb.cells if c.cell_type == "code"), None)
    printed = "".join(o.get("text", "") for o in (setup.outputs if setup else []) if o.get("output_type") == "stream")
    # Chatter or machine paths in what the reader sees (live widget views are normal on Colab).
    sys.path.insert(0, str(ROOT))
    from helpers.notebooks import output_problems

    problems = [p for p in output_problems(nb) if "widget" not in p]
    shown = note or printed.strip().replace("\n", " | ")
    return ok, f"{shown} [output problems: {len(problems)}{': ' + problems[0] if problems else ''}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--work", default=str(ROOT / "data" / "replica"), help="folder for the venv and content folders")
    parser.add_argument("--python", default="python3.13", help="Python 3.13 interpreter to build the venv with")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell")
    parser.add_argument("--execute", nargs=3, metavar=("NOTEBOOK", "CONTENT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.execute:  # the child, in the replica's venv
        ok, note = execute_alone(Path(args.execute[0]), Path(args.execute[1]), Path(args.execute[2]), args.timeout)
        print(note)
        return 0 if ok else 1

    sys.path.insert(0, str(ROOT))
    from helpers.repository import REPOSITORY
    from helpers.notebooks import notebook_paths

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    venv = build_venv(work, args.python)
    env = {**os.environ, **stand_in_colab(work)}
    for key in ("VIRTUAL_ENV", "TF_CPP_MIN_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL"):
        env.pop(key, None)
    (work / "executed").mkdir(exist_ok=True)
    paths = [Path(p).resolve() for p in args.notebooks] or notebook_paths()
    versions = subprocess.run([str(venv / "bin" / "python"), "-c",
                               "import sys, numpy, keras, tensorflow as tf; "
                               "print(sys.version.split()[0], tf.__version__, keras.__version__, numpy.__version__)"],
                              capture_output=True, text=True, env=env).stdout.split()
    print("replica: Python {} TensorFlow {} Keras {} numpy {}; OpenCV wheels: {}".format(*versions, ", ".join(OPENCV_WHEELS)))
    failed = 0
    total = 0.0
    for path in paths:
        restore_colab_opencv(venv)
        content = work / "content" / path.stem
        shutil.rmtree(content, ignore_errors=True)
        content.mkdir(parents=True)
        name = REPOSITORY.split("/")[1]
        shutil.copytree(ROOT, content / name, ignore=COPY_IGNORE)
        (content / name / "data").mkdir()
        start = time.perf_counter()
        result = subprocess.run([str(venv / "bin" / "python"), __file__, "--timeout", str(args.timeout), "--execute",
                                 str(content / name / "notebooks" / path.name), str(content),
                                 str(work / "executed" / path.name)],
                                capture_output=True, text=True, env=env, cwd=content)
        seconds = time.perf_counter() - start
        total += seconds
        failed += result.returncode != 0
        # The child prints what the setup cell printed, or the error; a crash leaves only stderr.
        note = result.stdout.strip() or (result.stderr.strip().splitlines() or [""])[-1]
        print(f"{'PASS' if result.returncode == 0 else 'FAIL'}  {path.name:<40} {seconds:6.1f} s   {note}", flush=True)
    print(f"{len(paths) - failed} passed, {failed} failed ({total:.0f} s in all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
