"""The notebooks' environment: repairing OpenCV on Colab before anything imports ``cv2``.

Colab's runtime (since 2026-08) lists three OpenCV wheels at once (opencv-contrib-python
4.14, opencv-python 5.0 and opencv-python-headless 5.0) writing one ``cv2/`` folder; with
the 5.0 files last, ``cv2`` has no ``CascadeClassifier`` and the face detector cannot load.
:func:`run`, called by every notebook's setup cell, reads the installed distributions and,
where any opencv* 5.x or several opencv* distributions are present, uninstalls them all and
installs ``opencv-python-headless>=4.10,<5``; then it checks the version and the cascade and
prints one line. Off Colab it does nothing (the project's requirements already pin OpenCV).

The decision is the pure function :func:`plan_opencv`, tested on made-up distribution lists;
pip is called through an injectable function, so tests run offline.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from helpers import quiet

#: What the repair installs: 4.x ships the Haar cascades (5.x moved them out) and the
#: headless wheel needs no libGL.
OPENCV_REQUIREMENT = "opencv-python-headless>=4.10,<5"
#: Imported modules the series needs that a Colab runtime might lack (import name: pip name).
COLAB_EXTRAS = {"tqdm": "tqdm", "ipywidgets": "ipywidgets"}
RESTART_SENTENCE = ("OpenCV was already imported in this session: restart the runtime "
                    "(Runtime > Restart session) and run this cell again.")

Pip = Callable[[list[str]], None]


@dataclass(frozen=True)
class OpenCVPlan:
    """What to do about the installed OpenCV distributions."""

    found: tuple[tuple[str, str], ...]  # (name, version) of every opencv* distribution
    uninstall: tuple[str, ...]  # names to uninstall (all of them, or none)
    install: str | None  # requirement to install, or None
    reason: str  # why, in a few words ("" when nothing is done)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _major(version: str) -> int | None:
    match = re.match(r"\s*(\d+)", version)
    return int(match.group(1)) if match else None


def plan_opencv(installed: Iterable[tuple[str, str]]) -> OpenCVPlan:
    """Decide, from (name, version) pairs of installed distributions, how to repair OpenCV.

    Several opencv* distributions share one ``cv2/`` folder, so which files win depends on
    install order; any 5.x lacks the Haar cascades. Either case: uninstall every opencv*
    and install :data:`OPENCV_REQUIREMENT`. None at all: install it. One 4.x: nothing.
    """
    found = tuple(sorted({(_normalise(name), version) for name, version in installed
                          if _normalise(name).startswith("opencv")}))
    names = tuple(name for name, _ in found)
    fives = [f"{name} {version}" for name, version in found if (_major(version) or 0) >= 5]
    if not found:
        return OpenCVPlan(found, (), OPENCV_REQUIREMENT, "no OpenCV installed")
    if len(found) > 1:
        return OpenCVPlan(found, names, OPENCV_REQUIREMENT,
                          f"{len(found)} OpenCV wheels share one cv2 folder")
    if fives:
        return OpenCVPlan(found, names, OPENCV_REQUIREMENT, "OpenCV 5 has no Haar cascades")
    return OpenCVPlan(found, (), None, "")


def installed_distributions() -> list[tuple[str, str]]:
    """(name, version) of every distribution installed in this environment."""
    pairs = []
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            pairs.append((name, dist.version))
    return pairs


def pip(args: list[str]) -> None:
    """Run ``python -m pip ARGS`` quietly in this interpreter's environment; raise on failure."""
    result = subprocess.run([sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def check_opencv() -> str:
    """Import ``cv2`` and load the frontal-face Haar cascade; return e.g. ``"cv2 4.12.0 with Haar cascades"``.

    Raises RuntimeError saying what is missing.
    """
    importlib.invalidate_caches()
    import cv2

    version = getattr(cv2, "__version__", "?")
    if not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError(f"this OpenCV ({version}) has no Haar cascades: "
                           f"pip install '{OPENCV_REQUIREMENT}' and restart the runtime")
    cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    if not cascade.is_file() or cv2.CascadeClassifier(str(cascade)).empty():
        raise RuntimeError(f"OpenCV {version} cannot load {cascade.name}: "
                           f"pip install '{OPENCV_REQUIREMENT}' and restart the runtime")
    return f"cv2 {version} with Haar cascades"


def repair_opencv(installed: Iterable[tuple[str, str]] | None = None, pip: Pip = pip,
                  modules: Mapping[str, object] | None = None, check: Callable[[], str] | None = None) -> str:
    """Apply :func:`plan_opencv` to this environment and return the one line to print.

    ``installed``, ``pip``, ``modules`` (``sys.modules``) and ``check`` (:func:`check_opencv`)
    are injectable for tests.
    """
    modules = sys.modules if modules is None else modules
    check = check or check_opencv
    plan = plan_opencv(installed_distributions() if installed is None else installed)
    found = ", ".join(f"{name} {version}" for name, version in plan.found) or "no OpenCV"
    if plan.install is None:
        return f"OpenCV: found {found}; {check()}."
    if plan.uninstall:
        pip(["uninstall", "-y", *plan.uninstall])
    pip(["install", plan.install])
    done = (f"uninstalled {', '.join(plan.uninstall)} and installed {plan.install}" if plan.uninstall
            else f"installed {plan.install}")
    if "cv2" in modules:
        # The broken cv2 stays loaded in this process: only a restart picks up the new files.
        return f"OpenCV: found {found} ({plan.reason}); {done}. {RESTART_SENTENCE}"
    return f"OpenCV: found {found} ({plan.reason}); {done}; {check()}."


def missing_extras(find_spec: Callable[[str], object] = importlib.util.find_spec) -> list[str]:
    """pip names of :data:`COLAB_EXTRAS` whose module cannot be imported."""
    return [pip_name for module, pip_name in COLAB_EXTRAS.items() if find_spec(module) is None]


def on_colab(modules: Mapping[str, object] | None = None) -> bool:
    """Whether this kernel runs on Google Colab (its ``google.colab`` module is loaded)."""
    return "google.colab" in (sys.modules if modules is None else modules)


def run(colab: bool | None = None, pip: Pip = pip) -> str | None:
    """The setup cell's work: on Colab, install what is missing and repair OpenCV, printing one line.

    Elsewhere nothing happens (``import helpers`` has already quietened TensorFlow's start-up).
    Returns the line printed, or None.
    """
    quiet.install()
    if not (on_colab() if colab is None else colab):
        return None
    extras = missing_extras()
    if extras:
        pip(["install", *extras])
    line = repair_opencv(pip=pip)
    if extras:
        line += f" Installed {', '.join(extras)}."
    print(line)
    return line


if __name__ == "__main__":
    run()
