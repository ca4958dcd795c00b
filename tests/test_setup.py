"""The Colab OpenCV repair: decisions on made-up distribution lists, pip calls recorded, not run."""

from __future__ import annotations

import pytest

from helpers import setup as S

COLAB_2026 = [("opencv-contrib-python", "4.14.0.94"), ("opencv-python", "5.0.0.93"),
              ("opencv_python_headless", "5.0.0.93"), ("numpy", "2.1.3"), ("tensorflow", "2.20.0")]


def test_colab_runtime_of_2026_is_repaired():
    plan = S.plan_opencv(COLAB_2026)
    assert plan.uninstall == ("opencv-contrib-python", "opencv-python", "opencv-python-headless")
    assert plan.install == "opencv-python-headless>=4.10,<5"
    assert "3 OpenCV wheels" in plan.reason


@pytest.mark.parametrize("installed, uninstall", [
    ([("opencv-python", "5.0.0.93")], ("opencv-python",)),
    ([("opencv-python-headless", "4.12.0.88"), ("opencv-python", "4.12.0.88")],
     ("opencv-python", "opencv-python-headless")),
    ([("Opencv.Contrib_Python", "4.14.0.94"), ("opencv-python-headless", "4.14.0.94")],
     ("opencv-contrib-python", "opencv-python-headless")),
])
def test_any_five_or_several_wheels_means_uninstall_all(installed, uninstall):
    plan = S.plan_opencv(installed + [("scikit-learn", "1.5.0")])
    assert plan.uninstall == uninstall
    assert plan.install == S.OPENCV_REQUIREMENT


@pytest.mark.parametrize("name", ["opencv-python-headless", "opencv-contrib-python", "opencv-python"])
def test_one_opencv_4_is_left_alone(name):
    plan = S.plan_opencv([(name, "4.10.0.84"), ("numpy", "1.26.4")])
    assert plan.install is None and plan.uninstall == () and plan.reason == ""


def test_no_opencv_installs_without_uninstalling():
    plan = S.plan_opencv([("numpy", "2.1.3")])
    assert plan.uninstall == () and plan.install == S.OPENCV_REQUIREMENT


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, args):
        self.calls.append(args)


def test_repair_calls_pip_uninstall_then_install_and_checks():
    pip = Recorder()
    line = S.repair_opencv(COLAB_2026, pip=pip, modules={}, check=lambda: "cv2 4.12.0 with Haar cascades")
    assert pip.calls == [["uninstall", "-y", "opencv-contrib-python", "opencv-python", "opencv-python-headless"],
                         ["install", "opencv-python-headless>=4.10,<5"]]
    assert line.count("\n") == 0
    assert "opencv-python 5.0.0.93" in line and "cv2 4.12.0 with Haar cascades" in line
    assert "restart" not in line


def test_repair_after_cv2_was_imported_asks_for_a_restart_and_does_not_check():
    pip = Recorder()

    def check():
        raise AssertionError("the loaded cv2 is the broken one: checking it proves nothing")

    line = S.repair_opencv(COLAB_2026, pip=pip, modules={"cv2": object()}, check=check)
    assert len(pip.calls) == 2
    assert line.endswith(S.RESTART_SENTENCE) and line.count(".") >= 2


def test_good_install_only_checks():
    pip = Recorder()
    line = S.repair_opencv([("opencv-python-headless", "4.12.0.88")], pip=pip, modules={}, check=lambda: "ok")
    assert pip.calls == [] and line == "OpenCV: found opencv-python-headless 4.12.0.88; ok."


def test_failed_check_raises_with_the_fix():
    with pytest.raises(RuntimeError, match="cannot"):
        S.repair_opencv([("opencv-python", "4.12.0.88")], pip=Recorder(), modules={},
                        check=lambda: (_ for _ in ()).throw(RuntimeError("OpenCV 5.0.0 cannot load x")))


def test_check_opencv_on_this_environment_finds_the_cascade():
    assert S.check_opencv().endswith("with Haar cascades")


def test_installed_distributions_reads_this_environment():
    names = {S._normalise(name) for name, _ in S.installed_distributions()}
    assert {"numpy", "pytest"} <= names


def test_run_off_colab_does_nothing(capsys):
    pip = Recorder()
    assert S.run(colab=False, pip=pip) is None
    assert pip.calls == [] and capsys.readouterr().out == ""


def test_run_on_colab_prints_one_line(capsys, monkeypatch):
    monkeypatch.setattr(S, "installed_distributions", lambda: COLAB_2026)
    monkeypatch.setattr(S, "check_opencv", lambda: "cv2 4.12.0 with Haar cascades")
    monkeypatch.setattr(S, "missing_extras", lambda: [])
    monkeypatch.delitem(__import__("sys").modules, "cv2", raising=False)
    pip = Recorder()
    line = S.run(colab=True, pip=pip)
    out = capsys.readouterr().out
    assert out == line + "\n" and out.count("\n") == 1
    assert [c[0] for c in pip.calls] == ["uninstall", "install"]


def test_on_colab_reads_the_module_table():
    assert S.on_colab({"google.colab": object()}) and not S.on_colab({})
