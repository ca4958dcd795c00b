"""``python -m helpers predict`` on readers' own clips: rows per clip, statuses, formats, exit codes, warnings."""

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import TRAITS
from helpers import predict as P
from helpers.__main__ import main
from helpers.synthetic import HeadSprite, write_video

FORMAT_KEYS = {"clip", "status", "usable_frames", "sampled_frames", "scores", "warning", "error"}


def face_clip(path: Path, n: int = 24, face_from: int = 0) -> Path:
    """A 320x240 clip of the bundled photo's face; frames before ``face_from`` show an empty background."""
    sprite = HeadSprite(110)
    frames = []
    for i in range(n):
        frame = np.full((240, 320, 3), 90, np.uint8)
        if i >= face_from:
            frame, _ = sprite.paste(frame, (160, 120), 0.0)
        frames.append(frame)
    write_video(path, frames, 25.0)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A folder of mixed clips: two with a face, one without, one that is not a video, one with few faces."""
    folder = tmp_path_factory.mktemp("mine") / "my clips"
    folder.mkdir()
    face_clip(folder / "alice.000.mp4")
    face_clip(folder / "bob.001.mp4")
    write_video(folder / "wall.000.mp4", [np.full((240, 320, 3), 90, np.uint8)] * 24, 25.0)
    (folder / "notes.000.mp4").write_text("not a video")
    face_clip(folder / "late.000.mp4", n=200, face_from=180)  # of 8 sampled frames (1 s apart) only one shows it
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tests.test_training import TINY, make_cache
    from helpers import training as Tr

    root = tmp_path_factory.mktemp("predict-run")
    out = root / "run"
    Tr.train(make_cache(root), out, epochs=1, batch_size=4, seed=0, model_kwargs=TINY)
    return out


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_of_mixed_clips_gives_one_row_per_clip(run_dir, clips, capsys):
    code, out, err = run_cli(capsys, clips, "--model", run_dir, "--json")
    assert code == 0
    rows = {Path(r["clip"]).name: r for r in json.loads(out)}
    assert set(rows) == {"alice.000.mp4", "bob.001.mp4", "wall.000.mp4", "notes.000.mp4", "late.000.mp4"}
    for row in rows.values():
        assert set(row) == FORMAT_KEYS
    assert rows["alice.000.mp4"]["status"] == "scored"
    assert set(rows["alice.000.mp4"]["scores"]) == set(TRAITS)
    assert all(0.0 <= v <= 1.0 for v in rows["alice.000.mp4"]["scores"].values())
    assert rows["wall.000.mp4"]["status"] == "no_face" and rows["wall.000.mp4"]["scores"] is None
    assert rows["notes.000.mp4"]["status"] == "unreadable" and rows["notes.000.mp4"]["scores"] is None
    assert "notes.000.mp4" in rows["notes.000.mp4"]["error"]
    late = rows["late.000.mp4"]
    assert late["status"] == "scored" and late["usable_frames"] < late["sampled_frames"] / 4
    assert "few" in late["warning"]
    assert P.SCORES_MEANING in err


def test_no_face_clip_alone_prints_no_numbers_and_exits_1(run_dir, clips, capsys):
    code, out, err = run_cli(capsys, clips / "wall.000.mp4", "--model", run_dir)
    assert code == 1
    assert "nan" not in out.lower()
    line = [l for l in out.splitlines() if "wall.000.mp4" in l][0]
    assert "no_face" in line and "no usable face" in line
    assert P.SCORES_MEANING in out + err


def test_table_shows_usable_of_sampled_and_scores(run_dir, clips, capsys):
    code, out, _ = run_cli(capsys, clips / "alice.000.mp4", clips / "notes.000.mp4", "--model", run_dir)
    assert code == 0
    alice = [l for l in out.splitlines() if "alice.000.mp4" in l][0]
    frames, *scores = alice.rsplit(None, 6)[1:]  # the clip's path may hold spaces
    sampled = int(frames.split("/")[1])
    assert frames == f"{sampled}/{sampled}" and sampled > 0
    assert all(0.0 <= float(v) <= 1.0 for v in scores) and len(scores) == 5
    assert "unreadable" in [l for l in out.splitlines() if "notes.000.mp4" in l][0]
    assert P.SCORES_MEANING.split(":")[0] in out


def test_csv_has_header_rows_and_the_meaning(run_dir, clips, capsys):
    code, out, _ = run_cli(capsys, clips, "--model", run_dir, "--csv")
    assert code == 0
    comments = [l for l in out.splitlines() if l.startswith("#")]
    assert any(P.SCORES_MEANING in l for l in comments)
    rows = list(csv.DictReader(io.StringIO("\n".join(l for l in out.splitlines() if not l.startswith("#")))))
    assert len(rows) == 5
    no_face = [r for r in rows if r["clip"].endswith("wall.000.mp4")][0]
    assert no_face["status"] == "no_face" and all(no_face[t] == "" for t in TRAITS)


def test_demo_trained_model_carries_the_demo_warning(run_dir, clips, tmp_path, capsys):
    demo_run = tmp_path / "demo-run"
    shutil.copytree(run_dir, demo_run)
    metrics = json.loads((demo_run / "metrics.json").read_text())
    metrics["dataset"] = "demo"
    (demo_run / "metrics.json").write_text(json.dumps(metrics))
    for fmt in ([], ["--json"], ["--csv"]):
        code, out, err = run_cli(capsys, clips / "alice.000.mp4", "--model", demo_run, *fmt)
        assert code == 0
        assert P.DEMO_WARNING in out + err and P.SCORES_MEANING in out + err
    code, out, err = run_cli(capsys, clips / "alice.000.mp4", "--model", run_dir)
    assert P.DEMO_WARNING not in out + err


def test_usage_errors_exit_2(run_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, empty, "--model", run_dir)
    assert code == 2 and str(empty) in err and ".mp4" in err
    code, _, err = run_cli(capsys, tmp_path / "missing.mp4", "--model", run_dir)
    assert code == 2 and "missing.mp4" in err
    code, _, err = run_cli(capsys, tmp_path / "x.mp4", "--model", tmp_path)
    assert code == 2 and "run folder" in err


def test_scores_use_the_training_preprocessing(run_dir, clips):
    """predict_video's scores are the model's output on ``to_model_input`` of the clip's usable crops."""
    from helpers.faces import video_to_faces
    from helpers.inputs import to_model_input
    from helpers.training import load_run

    row = P.predict_video(clips / "alice.000.mp4", run_dir)
    run = load_run(run_dir)
    s = run.settings
    seq = video_to_faces(clips / "alice.000.mp4", num_frames=s.num_frames, size=s.size)
    x, mask = to_model_input(seq.faces, seq.usable, s.length, s.padding)
    expected = np.asarray(run.model.predict_on_batch({"faces": x[None], "mask": mask[None]}))[0]
    assert row.status == "scored" and row.sampled_frames == s.num_frames
    assert [row.scores[t] for t in TRAITS] == pytest.approx(expected.tolist())


def test_default_output_has_no_tool_chatter(run_dir, clips):
    """A fresh process (TensorFlow imported for the first time) prints only our lines."""
    import re
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "helpers", "predict", str(clips), "--model", str(run_dir)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    chatter = re.compile(r"^[IWEF]\d{4} |absl|oneDNN|cuInit|cuda|AVX|moov atom|TF_ENABLE", re.M)
    assert not chatter.search(proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[-2000:]
    assert P.SCORES_MEANING in proc.stdout


def test_verbose_turns_the_silencing_off(monkeypatch):
    from helpers import quiet

    monkeypatch.delenv(quiet.VERBOSE_VARIABLE, raising=False)
    called = []
    monkeypatch.setattr(quiet, "install", lambda verbose=False: called.append(verbose))
    with pytest.raises(SystemExit):  # argparse: 'predict' needs its arguments
        main(["--verbose", "predict"])
    assert called == [True]


def _run_with_detector(run_dir: Path, to: Path, detector: dict) -> Path:
    shutil.copytree(run_dir, to)
    metrics = json.loads((to / "metrics.json").read_text())
    metrics["settings"]["detector"] = detector
    (to / "metrics.json").write_text(json.dumps(metrics))
    return to


def test_faces_are_found_with_the_detector_the_run_recorded(run_dir, clips, tmp_path, capsys):
    recorded = json.loads((run_dir / "metrics.json").read_text())["settings"]["detector"]
    assert recorded["name"] == "haar-frontalface-default"  # train copied it from the cache's manifest
    # The same run, as if its cache had been prepared with a cascade that needs 10,000
    # overlapping windows to agree: no face can pass, so nothing is scored.
    strict = {"name": recorded["name"], "settings": {**recorded["settings"], "min_neighbors": 10_000}}
    code, out, _ = run_cli(capsys, clips / "alice.000.mp4", "--model",
                           _run_with_detector(run_dir, tmp_path / "strict", strict), "--json")
    assert code == 1 and json.loads(out)[0]["status"] == "no_face"
    code, out, _ = run_cli(capsys, clips / "alice.000.mp4", "--model", run_dir, "--json")
    assert code == 0 and json.loads(out)[0]["status"] == "scored"

    unknown = {"name": "some-cnn", "settings": {}}
    code, _, err = run_cli(capsys, clips / "alice.000.mp4", "--model",
                           _run_with_detector(run_dir, tmp_path / "unknown", unknown))
    assert code == 2 and "unknown face detector 'some-cnn'" in err


def test_damaged_run_folder_is_one_line_and_exit_2(run_dir, clips, tmp_path, capsys):
    """No traceback for a run folder a user broke: the file and what to do, on one line."""
    cases = {"metrics.json": b"{garbage", "model.keras": (run_dir / "model.keras").read_bytes()[:2000]}
    for name, data in cases.items():
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(run_dir, broken)
        (broken / name).write_bytes(data)
        code, out, err = run_cli(capsys, clips / "alice.000.mp4", "--model", broken)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert str(broken / name) in err and "re-run" in err and "Traceback" not in err
    assert "damaged" in err and "File not found" not in err.split("(")[0]


def test_provenance_reads_the_runs_record(run_dir):
    from helpers.runs import read_run

    prov = P.run_provenance(run_dir)
    assert prov["split_scheme"] == read_run(run_dir).split_scheme == "by-video"  # train's default
    assert prov["test_mean_accuracy"] == read_run(run_dir).metrics["mean_accuracy"]
