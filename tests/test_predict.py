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
from helpers.synthetic import place_face, write_video

FORMAT_KEYS = {"clip", "status", "usable_frames", "sampled_frames", "scores", "warning", "error"}


def face_clip(path: Path, n: int = 24, face_from: int = 0) -> Path:
    """A 320x240 clip of the bundled photo's face; frames before ``face_from`` show an empty background."""
    frames = []
    for i in range(n):
        frame = np.full((240, 320, 3), 90, np.uint8)
        if i >= face_from:
            frame, _ = place_face(frame, (160.0, 120.0), 120.0)
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
    face_clip(folder / "late.000.mp4", n=40, face_from=34)
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
    sampled = int(alice.split()[1].split("/")[1])
    assert alice.split()[1] == f"{sampled}/{sampled}"
    assert len([float(v) for v in alice.split()[2:]]) == 5
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
