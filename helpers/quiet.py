"""Silencing TensorFlow's, absl's and FFmpeg's start-up chatter at the source.

Importing TensorFlow (directly or through Keras) writes a dozen lines to the process's
standard error from C++: absl's "All log messages before absl::InitializeLog()", oneDNN,
"Could not find cuda drivers", CPU-instruction notes. In TensorFlow 2.21 some of them
ignore every log-level environment variable, so the only way to keep them out of a
notebook is to point file descriptor 2 elsewhere while TensorFlow loads, then replay
whatever was not known chatter. :func:`install` does that for the first import of
``tensorflow`` or ``keras`` in the process, wherever it happens (a notebook's ``import
keras``, or a ``helpers`` module), and asks OpenCV's FFmpeg backend to keep quiet about
damaged files ("moov atom not found"): ``helpers`` reports those itself, naming the file.

``import helpers`` calls :func:`install`; ``install(verbose=True)`` (the command line's
``--verbose``) turns it all off again, as long as TensorFlow has not been imported yet.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

#: Top-level modules whose first import is made quiet.
QUIET_MODULES = ("tensorflow", "keras")

#: C++ sources of TensorFlow/XLA whose start-up lines are chatter on a machine like ours
#: (CPU-only, or GPU without the matching CUDA libraries).
CHATTER_SOURCES = frozenset({
    "port.cc", "cudart_stub.cc", "cpu_feature_guard.cc", "cuda_platform.cc", "cuda_executor.cc",
    "cuda_dnn.cc", "cuda_fft.cc", "cuda_blas.cc", "cuda_diagnostics.cc", "computation_placer.cc",
    "gpu_device.cc", "cuda_driver.cc", "dso_loader.cc",
})

# absl format (TF >= 2.18: "I0000 00:00:1795697294.928127    6366 port.cc:153] ...") and
# TensorFlow's older format ("2024-05-01 12:00:00.123456: I tensorflow/core/util/port.cc:113] ...").
_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: [IWEF] )(?:\S*/)?(?P<source>[\w.]+\.(?:cc|h)):\d+\]"
)
_CHATTER_LINES = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    # The second line of cpu_feature_guard's message.
    re.compile(r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"),
)

#: Environment variables set by :func:`install` (the values found are restored by ``install(verbose=True)``): TensorFlow's C++ log
#: level (3: errors too; it hides what comes after start-up, such as "oneDNN supports DT_BOOL
#: only on platforms with AVX-512" at a masked GRU's first step, while real failures still
#: raise in Python) and FFmpeg's inside OpenCV (-8 = AV_LOG_QUIET; read when the first
#: ``cv2.VideoCapture`` opens a file).
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "OPENCV_FFMPEG_LOGLEVEL": "-8"}

_state = {"verbose": False, "env_set": {}}


def is_chatter(line: str) -> bool:
    """Whether one line of standard error is known start-up chatter (safe to drop)."""
    line = line.rstrip("\r\n")
    match = _LOG_LINE.match(line)
    if match:
        return match.group("source") in CHATTER_SOURCES
    return any(pattern.match(line) for pattern in _CHATTER_LINES)


def filter_chatter(text: str) -> str:
    """``text`` without its chatter lines (other lines kept, in order, with their line ends)."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_chatter(line))


@contextmanager
def quiet_stderr(verbose: bool = False) -> Iterator[None]:
    """Point file descriptor 2 at a temporary file inside the block; then replay what was not chatter.

    Catches what C++ code writes, which ``contextlib.redirect_stderr`` cannot. What
    survives the filter goes to ``sys.stderr`` (in Jupyter: the cell's output). With
    ``verbose=True`` nothing is redirected.
    """
    if verbose:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (some embedded interpreters): nothing to catch
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = filter_chatter(sink.read().decode("utf-8", errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def import_quietly(name: str, verbose: bool = False):
    """Import module ``name`` (e.g. ``"tensorflow"``, ``"keras"``) inside :func:`quiet_stderr`."""
    if name in sys.modules:
        return sys.modules[name]
    with quiet_stderr(verbose):
        module = importlib.import_module(name)
        if name.partition(".")[0] in QUIET_MODULES and not verbose:
            _initialise_devices()
    return module


def import_keras_quietly(verbose: bool = False):
    """``import keras`` (and TensorFlow under it) without the start-up chatter; returns ``keras``."""
    return import_quietly("keras", verbose)


def _initialise_devices() -> None:
    # TensorFlow probes for CUDA on first use, not on import ("failed call to cuInit"):
    # probe now, while stderr is still redirected.
    tf = sys.modules.get("tensorflow")
    config = getattr(tf, "config", None)
    if config is not None:
        try:
            config.list_physical_devices()
        except Exception:  # noqa: BLE001 - a probe only; the real error comes at real use
            pass


class _PassThroughLoader(importlib.abc.Loader):
    """Hands the import machinery a module that :class:`_QuietFinder` already imported."""

    def __init__(self, module):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        # The machinery stamped our spec on the module: give it back its real one.
        module.__spec__ = self.real_spec
        module.__loader__ = self.real_spec.loader


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Makes the first import of tensorflow/keras quiet, whatever code imports it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in QUIET_MODULES or fullname in sys.modules:
            return None
        _remove_finder()  # one quiet import per process; also prevents recursion
        module = import_quietly(fullname, _state["verbose"])
        loader = _PassThroughLoader(module)
        loader.real_spec = module.__spec__
        return importlib.util.spec_from_loader(fullname, loader)


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]


#: Set to "1" by ``install(verbose=True)``; processes started afterwards (notebook kernels,
#: workers) inherit it, so their ``import helpers`` stays verbose too.
VERBOSE_VARIABLE = "HELPERS_VERBOSE"


def install(verbose: bool = False) -> None:
    """Make this process's first TensorFlow/Keras import quiet, and FFmpeg's messages inside OpenCV.

    Idempotent. ``verbose=True`` (or the environment variable ``HELPERS_VERBOSE=1``) undoes
    it: removes the import hook and unsets the variables this module set, and sets
    ``HELPERS_VERBOSE=1`` for child processes. Call it before anything imports TensorFlow or
    opens a video (the command line's ``--verbose``).
    """
    verbose = verbose or os.environ.get(VERBOSE_VARIABLE) == "1"
    _state["verbose"] = verbose
    if verbose:
        os.environ[VERBOSE_VARIABLE] = "1"
        _remove_finder()
        for key, (value, previous) in _state["env_set"].items():
            if os.environ.get(key) == value:
                if previous is None:
                    del os.environ[key]
                else:
                    os.environ[key] = previous
        _state["env_set"] = {}
        return
    for key, value in QUIET_ENVIRONMENT.items():
        # Set even over a louder value found (CI scripts often export TF_CPP_MIN_LOG_LEVEL=2, which
        # lets "oneDNN supports DT_BOOL only ..." through): quiet is the default, --verbose undoes it.
        if os.environ.get(key) != value:
            _state["env_set"].setdefault(key, (value, os.environ.get(key)))
            os.environ[key] = value
    if not any(name in sys.modules for name in QUIET_MODULES) and not any(
            isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
