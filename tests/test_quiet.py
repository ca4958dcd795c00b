"""Start-up chatter silenced at the source; everything else still reaches the reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import quiet

ROOT = Path(__file__).resolve().parents[1]

CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795697294.928127    6366 port.cc:153] oneDNN custom operations are on. You may see ...",
    "I0000 00:00:1795697294.928499    6366 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
    "I0000 00:00:1795697295.038619    6366 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1795697306.247666    6366 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "2024-05-01 12:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.",
    "2024-05-01 12:00:00.123456: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261] Unable to register cuDNN factory",
]
NOT_CHATTER = [
    "E0000 00:00:1795697306.247666    6366 my_op.cc:12] shape mismatch in your layer",
    "Traceback (most recent call last):",
    "UserWarning: something the reader should see",
    "oneDNN custom operations are on",  # not in a log line's format: keep
]


@pytest.mark.parametrize("line", CHATTER)
def test_known_chatter_is_recognised(line):
    assert quiet.is_chatter(line) and quiet.is_chatter(line + "\n")


@pytest.mark.parametrize("line", NOT_CHATTER)
def test_other_lines_are_kept(line):
    assert not quiet.is_chatter(line)


def test_filter_keeps_order_and_line_ends():
    text = "\n".join([CHATTER[0], "keep 1", CHATTER[1], "keep 2"]) + "\n"
    assert quiet.filter_chatter(text) == "keep 1\nkeep 2\n"


def test_quiet_stderr_catches_file_descriptor_2_and_replays_the_rest(capfd):
    with quiet.quiet_stderr():
        os.write(2, (CHATTER[1] + "\nsomething real\n").encode())
    err = capfd.readouterr().err
    assert err == "something real\n"


def test_quiet_stderr_restores_fd_2_after_an_error(capfd):
    with pytest.raises(KeyError):
        with quiet.quiet_stderr():
            raise KeyError("x")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_verbose_redirects_nothing(capfd):
    with quiet.quiet_stderr(verbose=True):
        os.write(2, (CHATTER[1] + "\n").encode())
    assert capfd.readouterr().err == CHATTER[1] + "\n"


def test_install_verbose_undoes_what_install_did(monkeypatch):
    for key in (*quiet.QUIET_ENVIRONMENT, quiet.VERBOSE_VARIABLE):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setitem(quiet._state, "env_set", {})
    monkeypatch.setitem(quiet._state, "verbose", False)
    quiet.install()
    assert os.environ["OPENCV_FFMPEG_LOGLEVEL"] == "-8"
    quiet.install(verbose=True)
    assert "OPENCV_FFMPEG_LOGLEVEL" not in os.environ and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert not any(isinstance(f, quiet._QuietFinder) for f in sys.meta_path)
    # Child processes (kernels) inherit the choice: their own install() stays verbose.
    assert os.environ[quiet.VERBOSE_VARIABLE] == "1"
    quiet.install()
    assert "OPENCV_FFMPEG_LOGLEVEL" not in os.environ and quiet._state["verbose"]


def test_install_overrides_a_louder_log_level_and_verbose_restores_it(monkeypatch):
    for key in (*quiet.QUIET_ENVIRONMENT, quiet.VERBOSE_VARIABLE):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # lets TensorFlow's error-level notes through
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setitem(quiet._state, "env_set", {})
    monkeypatch.setitem(quiet._state, "verbose", False)
    quiet.install()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == quiet.QUIET_ENVIRONMENT["TF_CPP_MIN_LOG_LEVEL"]
    quiet.install(verbose=True)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2" and "OPENCV_FFMPEG_LOGLEVEL" not in os.environ


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in (*quiet.QUIET_ENVIRONMENT, quiet.VERBOSE_VARIABLE)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**clean, **(env or {})})


@pytest.mark.slow
def test_first_keras_import_after_import_helpers_is_quiet():
    code = ("import sys, helpers, keras, tensorflow as tf\n"
            "print(float(tf.reduce_sum(tf.ones(3))), keras.__spec__.name, type(keras.__spec__.loader).__name__)\n"
            "print('still here', file=sys.stderr)\n")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3.0", "keras", "SourceFileLoader"]
    assert result.stderr == "still here\n"


@pytest.mark.slow
def test_without_helpers_tensorflow_is_noisy_here():
    # The baseline that the test above improves on: if this ever prints nothing,
    # the quiet import is no longer needed.
    result = _python("import keras")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip(), "TensorFlow's import printed nothing"


def _broken_mp4(path: Path) -> Path:
    import cv2

    whole = path.with_name("whole.mp4")
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the index ("moov atom") sits at the end: lost
    return path


@pytest.mark.parametrize("with_helpers, env", [(True, {}), (False, {}), (True, {"HELPERS_VERBOSE": "1"})])
def test_ffmpeg_message_about_a_cut_mp4_is_silenced_by_import_helpers(tmp_path, with_helpers, env):
    clip = _broken_mp4(tmp_path / "cut.mp4")
    prefix = "import helpers; " if with_helpers else ""
    result = _python(prefix + f"import cv2; print(cv2.VideoCapture({str(clip)!r}).isOpened())", env)
    assert result.stdout.strip() == "False"
    assert ("moov atom not found" in result.stderr) is not (with_helpers and not env)


@pytest.mark.slow
def test_a_masked_recurrent_layer_runs_quietly_after_import_helpers():
    code = ("import helpers, keras, numpy as np\n"
            "x = np.random.rand(2, 5, 3).astype('float32'); m = np.array([[1, 1, 1, 0, 0], [1] * 5], bool)\n"
            "inp, mask = keras.Input((5, 3)), keras.Input((5,), dtype='bool')\n"
            "model = keras.Model([inp, mask], keras.layers.GRU(4)(inp, mask=mask))\n"
            "print(model.predict([x, m], verbose=0).shape)\n")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 4)" and result.stderr == ""
