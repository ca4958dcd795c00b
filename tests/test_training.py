"""helpers.training end to end on a tiny hand-made cache (tiny model, two epochs)."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import TRAITS
from helpers.atomic import write_json_atomic
from helpers.cache import MANIFEST_VERSION, clip_cache_path, save_clip_cache
from helpers.faces import HaarDetector, detector_record
from helpers import training as Tr

SIZE, FRAMES = 48, 8
TINY = {"widths": (4, 8), "features": 8, "units": 8}


def make_cache(root: Path, n_per_split=(8, 4, 4), seed=0, videos: int | None = None, **manifest_keys) -> Path:
    """Clips whose brightness sets 'neuroticism' (others random), some short, some frames unfound
    (half of those bridged: usable).

    Each clip its own video, or with ``videos`` the clips dealt in turn to that many videos
    (``vid00.000.mp4``, ``vid01.000.mp4``, ...), so videos have clips in several official splits.
    """
    rng = np.random.default_rng(seed)
    cache = root / "cache"
    clips = {}
    k = 0
    for split, count in zip(("train", "validation", "test"), n_per_split):
        for i in range(count):
            name = f"{split[:2]}{i:02d}.000.mp4" if videos is None else f"vid{k % videos:02d}.{k // videos:03d}.mp4"
            k += 1
            n = int(rng.integers(5, FRAMES + 3))
            level = rng.uniform(0.2, 0.8)
            faces = np.clip(rng.normal(level * 255, 20, size=(n, SIZE, SIZE)), 0, 255).astype(np.uint8)
            found = rng.uniform(size=n) > 0.2
            found[0] = True
            usable = found | (rng.uniform(size=n) > 0.5)
            path = clip_cache_path(cache, name)
            save_clip_cache(path, faces, found, usable, np.zeros((n, 4)), np.arange(n), 25.0)
            labels = {t: float(rng.uniform(0.3, 0.7)) for t in TRAITS}
            labels["neuroticism"] = float(level)
            clips[name] = {"split": split, "status": "prepared", "file": str(path.relative_to(cache)),
                           "labels": labels, "n_frames": n, "n_found": int(found.sum()),
                           "n_usable": int(usable.sum()), "fps": 25.0, "error": None, "warning": None}
    clips["nf.000.mp4"] = {"split": "train", "status": "no_face", "file": None, "labels": labels,
                           "n_frames": 0, "n_found": 0, "n_usable": 0, "fps": 25.0, "error": None, "warning": None}
    settings = {"num_frames": FRAMES, "size": SIZE, "detector": detector_record(HaarDetector())}
    write_json_atomic(cache / "manifest.json", {"version": MANIFEST_VERSION, "settings": settings, "clips": clips,
                                                **manifest_keys})
    return cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def run(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "light"
    metrics = Tr.train(cache, out, length=FRAMES, epochs=2, batch_size=4, seed=0, model_kwargs=TINY,
                       split_scheme="official")
    return out, metrics


def test_train_writes_model_history_and_metrics(run):
    out, metrics = run
    assert (out / "model.keras").is_file()
    history = json.loads((out / "history.json").read_text())
    assert all(len(history[k]) == 2 for k in ("loss", "val_loss", "mae", "val_mae"))
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert list(on_disk["per_trait"]) == list(TRAITS)
    for row in on_disk["per_trait"].values():
        assert {"accuracy", "mae", "pearson_r", "baseline_accuracy"} <= set(row)
        assert row["accuracy"] == pytest.approx(1 - row["mae"])
        assert 0 < row["accuracy"] <= 1
    for key in ("mean_accuracy", "baseline_mean_accuracy", "mean_mae", "baseline_mean_mae"):
        assert isinstance(on_disk[key], float)
    assert on_disk["mean_accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in on_disk["per_trait"].values()]))
    assert on_disk["model"] == "light" and on_disk["seed"] == 0
    assert on_disk["settings"] == {"length": FRAMES, "size": SIZE, "num_frames": FRAMES,
                                   "padding": "zero_pad", "traits": list(TRAITS),
                                   "detector": detector_record(HaarDetector())}  # copied from the manifest
    assert on_disk["version"] == Tr.RUN_VERSION
    assert on_disk["n_clips"] == {"train": 8, "validation": 4, "test": 4}  # the no_face clip is left out
    assert on_disk["epochs_run"] == 2 and 1 <= on_disk["best_epoch"] <= 2
    assert (on_disk["split_scheme"], on_disk["split_seed"]) == ("official", 0)
    assert on_disk["dataset"] is None  # the manifest names no dataset and no source
    splits = json.loads((out / Tr.SPLITS_FILE).read_text())
    assert splits["split_scheme"] == "official" and splits["clips"]["nf.000.mp4"] == "train"
    assert {c: s for c, s in splits["clips"].items() if c != "nf.000.mp4"} == {
        c: {"tr": "train", "va": "validation", "te": "test"}[c[:2]] for c in splits["clips"] if c != "nf.000.mp4"}
    # One clip per video: no training clip of a test clip's video, so both baselines agree.
    assert on_disk["same_video_baseline_mean_accuracy"] == pytest.approx(on_disk["baseline_mean_accuracy"])


def test_baseline_is_the_train_mean_on_the_test_split(run, cache):
    _, metrics = run
    from helpers.inputs import split_entries

    y_train = np.stack([e.labels for e in split_entries(cache, "train")])
    y_test = np.stack([e.labels for e in split_entries(cache, "test")])
    base_mae = np.abs(y_test - y_train.mean(axis=0)).mean(axis=0)
    assert metrics["baseline_mean_accuracy"] == pytest.approx(1 - base_mae.mean(), abs=1e-6)
    assert metrics["per_trait"]["openness"]["baseline_accuracy"] == pytest.approx(1 - base_mae[4], abs=1e-6)


def test_evaluate_run_folder_matches_metrics(run, cache):
    out, metrics = run
    rep = Tr.evaluate(out, cache, "test")
    assert rep["mean_accuracy"] == pytest.approx(metrics["mean_accuracy"], abs=1e-5)
    assert len(rep["names"]) == 4 and np.asarray(rep["y_pred"]).shape == (4, 5)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A cache whose 6 videos have clips in several official splits, and a by-video run on it."""
    root = tmp_path_factory.mktemp("shared")
    cache = make_cache(root, n_per_split=(12, 6, 6), seed=3, videos=6, dataset="demo")
    out = root / "by_video"
    metrics = Tr.train(cache, out, length=FRAMES, epochs=1, batch_size=4, model_kwargs=TINY,
                       split_scheme="by-video", split_seed=1)
    return cache, out, metrics


def test_by_video_run_records_its_splits_and_is_never_scored_on_its_training_clips(shared):
    from helpers.dataset import video_id
    from helpers.inputs import split_entries

    cache, out, metrics = shared
    assert (metrics["split_scheme"], metrics["split_seed"], metrics["dataset"]) == ("by-video", 1, "demo")
    recorded = json.loads((out / Tr.SPLITS_FILE).read_text())
    assert (recorded["split_scheme"], recorded["split_seed"]) == ("by-video", 1)
    clips = recorded["clips"]
    videos = {s: {video_id(c) for c, x in clips.items() if x == s} for s in ("train", "validation", "test")}
    assert all(videos.values()) and not (videos["train"] & videos["test"]) and not (videos["train"] & videos["validation"])
    official_test = {e.name for e in split_entries(cache, "test")}
    training = {c for c, x in clips.items() if x == "train"}
    assert official_test & training, "the by-video scheme moves some official test clips into training"
    for split in ("validation", "test"):
        rep = Tr.evaluate(out, cache, split)  # the run's own splits, not the cache's official ones
        assert rep["split_scheme"] == "by-video"
        assert set(rep["names"]) == {c for c, x in clips.items() if x == split} and not set(rep["names"]) & training
    assert Tr.evaluate(out, cache, "test")["mean_accuracy"] == pytest.approx(metrics["mean_accuracy"], abs=1e-5)
    # No test clip's video has training clips: the same-video baseline is the train-mean baseline.
    assert metrics["same_video_baseline_mean_accuracy"] == pytest.approx(metrics["baseline_mean_accuracy"])


def test_same_video_baseline_on_official_splits_that_share_videos(shared):
    from helpers.dataset import video_id
    from helpers.inputs import split_entries
    from helpers.models import load_model

    cache, out, _ = shared
    rep = Tr.evaluate(load_model(out / "model.keras"), cache, "test")  # a model alone: the official splits
    assert rep["split_scheme"] == "official"
    train = split_entries(cache, "train")
    test = split_entries(cache, "test")
    assert rep["names"] == [e.name for e in test]
    by_video: dict[str, list] = {}
    for e in train:
        by_video.setdefault(video_id(e.name), []).append(e.labels)
    expected = np.stack([np.mean(by_video[video_id(e.name)], axis=0) for e in test])  # every test video has training clips
    y = np.stack([e.labels for e in test])
    assert rep["same_video_baseline_mean_accuracy"] == pytest.approx(1 - np.abs(y - expected).mean(), abs=1e-6)
    assert rep["same_video_baseline_mean_accuracy"] != pytest.approx(rep["baseline_mean_accuracy"], abs=1e-4)
    from helpers.metrics import format_report

    assert "same vid" in format_report(rep)


def test_unknown_split_scheme_is_refused(cache, tmp_path):
    with pytest.raises(ValueError, match="split scheme 'random'"):
        Tr.train(cache, tmp_path / "x", length=FRAMES, epochs=1, split_scheme="random", model_kwargs=TINY)


def test_source_dataset_is_demo_when_the_source_says_so(tmp_path):
    from helpers.dataset import dataset_kind, write_dataset_kind

    assert dataset_kind(tmp_path) == "first_impressions"
    write_dataset_kind(tmp_path, "demo")
    assert dataset_kind(tmp_path) == "demo"


def test_same_seed_same_result(run, cache, tmp_path):
    _, metrics = run
    again = Tr.train(cache, tmp_path / "again", length=FRAMES, epochs=2, batch_size=4, seed=0, model_kwargs=TINY,
                     split_scheme="official")
    assert again["mean_accuracy"] == pytest.approx(metrics["mean_accuracy"], abs=1e-5)


def test_cosine_learning_rate():
    assert Tr.cosine_learning_rate(0, 10, 1e-3) == pytest.approx(1e-3)
    assert Tr.cosine_learning_rate(9, 10, 1e-3) == pytest.approx(1e-3 * Tr.FINAL_LR_FRACTION)
    rates = [Tr.cosine_learning_rate(e, 10, 1e-3) for e in range(10)]
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_early_stopping_restores_best_weights(cache, tmp_path):
    # A learning rate this high makes validation loss jump around; the kept weights are the best epoch's.
    m = Tr.train(cache, tmp_path / "es", length=FRAMES, epochs=4, batch_size=4, seed=1, patience=1,
                 learning_rate=0.3, model_kwargs=TINY)
    history = json.loads((tmp_path / "es" / "history.json").read_text())
    best = int(np.argmin(history["val_mae"]))  # model choice by the challenge's measure
    assert m["best_epoch"] == best + 1
    assert m["epochs_run"] <= min(4, best + 2)  # stopped one epoch after the best
    assert m["validation"]["mean_mae"] == pytest.approx(history["val_mae"][best], abs=1e-4)


def test_mirrored_distribution_runs(cache, tmp_path):
    m = Tr.train(cache, tmp_path / "mirrored", length=FRAMES, epochs=1, batch_size=4, distribution="mirrored",
                 model_kwargs=TINY)
    assert m["distribution"] == "mirrored" and (tmp_path / "mirrored" / "model.keras").is_file()
    with pytest.raises(ValueError, match="distribution"):
        Tr.train(cache, tmp_path / "bad", length=FRAMES, epochs=1, distribution="tpu")


def test_verbose_prints_one_line_per_epoch(cache, tmp_path, capsys):
    Tr.train(cache, tmp_path / "v", length=FRAMES, epochs=2, batch_size=4, verbose=1, model_kwargs=TINY)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert len(lines) == 2 and "val_mae" in lines[0] and lines[1].startswith("epoch   2/2")


def test_corrupted_training_file_is_reported_and_skipped(tmp_path):
    cache = make_cache(tmp_path, seed=2)
    bad = clip_cache_path(cache, "tr03.000.mp4")
    bad.write_bytes(b"\x00garbage")
    m = Tr.train(cache, tmp_path / "run", length=FRAMES, epochs=1, batch_size=4, model_kwargs=TINY,
                 split_scheme="official")  # tr03 is a training clip of the official splits
    assert list(m["skipped_files"]) == ["tr03.000.mp4"] and str(bad) in m["skipped_files"]["tr03.000.mp4"]
    assert m["n_clips"]["train"] == 7


def test_cli_train(cache, tmp_path, capsys):
    from helpers.__main__ import main

    assert main(["train", str(cache), "--out", str(tmp_path / "cli"), "--length", str(FRAMES),
                 "--epochs", "1", "--batch-size", "4", "--split-scheme", "by-video", "--split-seed", "2",
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "light" and printed["epochs_run"] == 1
    assert (printed["split_scheme"], printed["split_seed"]) == ("by-video", 2)
    assert (tmp_path / "cli" / "metrics.json").is_file()
    # By default the report a person reads: one row per trait beside the baseline, the run folder.
    assert main(["train", str(cache), "--out", str(tmp_path / "cli2"), "--length", str(FRAMES),
                 "--epochs", "1", "--batch-size", "4"]) == 0
    text = capsys.readouterr().out
    assert all(t in text for t in TRAITS) and "baseline" in text and "{" not in text
    assert f"run folder: {tmp_path / 'cli2'}" in text


def test_run_of_an_older_version_is_refused(tmp_path):
    run = tmp_path / "old_run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"not read: the version is checked first")
    (run / "metrics.json").write_text(json.dumps({"settings": {"frames": 32, "sample_frames": 32}}))
    with pytest.raises(ValueError, match=f"{run}.*older version.*re-run .*train"):
        Tr.load_run(run)
    (run / "metrics.json").write_text(json.dumps({"version": 3, "settings": {}}))  # before packed masks
    with pytest.raises(ValueError, match=f"version 3, this one reads {Tr.RUN_VERSION}"):
        Tr.load_run(run)


# ----------------------------------------------------------------------------- the by-video default


def test_train_defaults_to_by_video_in_the_function_and_on_the_command_line(cache, tmp_path):
    import inspect

    from helpers.__main__ import build_parser

    assert inspect.signature(Tr.train).parameters["split_scheme"].default == "by-video"
    parser = build_parser("train")
    assert parser.parse_args(["train", "C", "--out", "R"]).split_scheme == "by-video"
    m = Tr.train(cache, tmp_path / "default", length=FRAMES, epochs=1, batch_size=4, model_kwargs=TINY)
    assert m["split_scheme"] == "by-video"
    assert json.loads((tmp_path / "default" / Tr.SPLITS_FILE).read_text())["split_scheme"] == "by-video"
    sub = next(a for a in parser._actions if a.dest == "command")
    help_text = " ".join(sub.choices["train"].format_help().split())
    assert "84 %" in help_text and "recognising people" in help_text


# ----------------------------------------------------------------------------- checked before any work


def _no_fit(monkeypatch):
    """Make any training attempt fail loudly: the checks must come first."""
    def fail(*a, **k):
        raise AssertionError("training started before the checks")
    monkeypatch.setattr(Tr, "_fit", fail)


@pytest.mark.parametrize("option, value, message", [
    ("epochs", 0, "epochs must be an integer >= 1"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("length", 0, f"length must be an integer from 1 to {Tr.MAX_LENGTH}"),
    ("length", 10**9, f"from 1 to {Tr.MAX_LENGTH}"),
    ("patience", -1, "patience must be an integer >= 0"),
    ("learning_rate", 0.0, "learning_rate must be a positive number"),
    ("learning_rate", float("nan"), "learning_rate must be a positive number"),
    ("padding", "mirror", "unknown padding 'mirror'"),
    ("model_name", "huge", "unknown model_name 'huge'"),
])
def test_options_are_checked_before_reading_the_cache(option, value, message, tmp_path, monkeypatch):
    _no_fit(monkeypatch)
    kwargs = {"length": FRAMES, "epochs": 1, option: value}
    with pytest.raises(ValueError, match=message):
        Tr.train(tmp_path / "no cache here", tmp_path / "run", **kwargs)  # the cache is not even looked at
    assert not (tmp_path / "run").exists()


def test_unwritable_out_is_found_before_training(cache, tmp_path, monkeypatch):
    _no_fit(monkeypatch)
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=f"cannot write the run folder {blocker / 'run'}"):
        Tr.train(cache, blocker / "run", length=FRAMES, epochs=1, model_kwargs=TINY)


def test_incomplete_cache_is_refused_unless_allowed(tmp_path, monkeypatch):
    cache = make_cache(tmp_path, complete=False, summary={"done": 17, "clips": 60})
    with monkeypatch.context() as m:
        _no_fit(m)
        with pytest.raises(Tr.IncompleteCacheError, match=rf"cache {cache} is incomplete .*17 of 60 clips.*"
                                                          r"Re-run `python -m helpers prepare.*--allow-incomplete"):
            Tr.train(cache, tmp_path / "run", length=FRAMES, epochs=1, model_kwargs=TINY)
    m = Tr.train(cache, tmp_path / "run", length=FRAMES, epochs=1, batch_size=4, model_kwargs=TINY,
                 allow_incomplete=True)
    assert m["n_clips"]["train"] > 0


def test_clip_names_without_a_video_id_are_refused_before_training(tmp_path, monkeypatch):
    cache = make_cache(tmp_path)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["clips"]["my holiday.mp4"] = manifest["clips"].pop("tr00.000.mp4")
    write_json_atomic(cache / "manifest.json", manifest)
    _no_fit(monkeypatch)
    for scheme in ("official", "by-video"):
        with pytest.raises(ValueError, match=f"of the cache {cache} are not '<video id>.<number>.<ext>'"):
            Tr.train(cache, tmp_path / "run", length=FRAMES, epochs=1, split_scheme=scheme, model_kwargs=TINY)


# ----------------------------------------------------------------------------- re-training is atomic


def _hidden_siblings(run: Path) -> list[str]:
    return sorted(p.name for p in run.parent.iterdir() if p.name.startswith(f".{run.name}."))


@pytest.fixture
def finished(cache, tmp_path):
    """A finished run folder, its metrics and its model's bytes."""
    out = tmp_path / "runs" / "light"
    Tr.train(cache, out, length=FRAMES, epochs=1, batch_size=4, seed=0, model_kwargs=TINY)
    return out, json.loads((out / "metrics.json").read_text()), (out / "model.keras").read_bytes()


def _old_run_intact(out: Path, metrics: dict, model_bytes: bytes) -> None:
    assert (out / "model.keras").read_bytes() == model_bytes
    run = Tr.load_run(out)
    assert run.metrics == metrics and run.model is not None
    assert _hidden_siblings(out) == []  # nothing half-written left beside it


def test_interrupted_during_model_save_leaves_the_old_run(finished, cache, monkeypatch):
    import keras

    out, metrics, model_bytes = finished

    def half_save(self, path, *a, **k):
        Path(path).write_bytes(b"PK\x03\x04 a stub")  # what an interrupted save leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", half_save)
    with pytest.raises(KeyboardInterrupt):
        Tr.train(cache, out, length=FRAMES, epochs=1, batch_size=4, seed=5, model_kwargs=TINY)
    _old_run_intact(out, metrics, model_bytes)


def test_failure_after_model_save_leaves_the_old_run(finished, cache, monkeypatch):
    from helpers import runs

    out, metrics, model_bytes = finished
    real = runs.write_json_atomic

    def fail_on_metrics(path, obj):
        if Path(path).name == "metrics.json":
            raise RuntimeError("killed just before metrics.json")
        real(path, obj)

    monkeypatch.setattr(runs, "write_json_atomic", fail_on_metrics)
    with pytest.raises(RuntimeError, match="killed"):
        Tr.train(cache, out, length=FRAMES, epochs=1, batch_size=4, seed=5, model_kwargs=TINY)
    _old_run_intact(out, metrics, model_bytes)


def test_disk_full_while_writing_names_the_path_and_keeps_the_old_run(finished, cache, monkeypatch):
    import errno

    import keras

    out, metrics, model_bytes = finished

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", full)
    with pytest.raises(OSError, match=f"could not write the run folder {out}: No space left on device "
                                      r"\(at .*model.keras\); the previous run there, if any, is unchanged"):
        Tr.train(cache, out, length=FRAMES, epochs=1, batch_size=4, model_kwargs=TINY)
    _old_run_intact(out, metrics, model_bytes)


def test_retraining_replaces_the_whole_run_and_load_run_sees_the_new_one(finished, cache):
    out, metrics, _ = finished
    assert Tr.load_run(out).metrics["seed"] == 0
    (out / "notes.txt").write_text("a file of the old run")
    new = Tr.train(cache, out, length=FRAMES, epochs=1, batch_size=4, seed=1, model_kwargs=TINY)
    assert Tr.load_run(out).metrics == new and new["seed"] == 1  # not the cached old run
    assert not (out / "notes.txt").exists() and _hidden_siblings(out) == []


def test_what_a_killed_train_left_is_tidied(finished):
    from helpers import runs

    out, metrics, model_bytes = finished
    dead = out.with_name(f".{out.name}.partial-999999999-0000")  # of no living process
    dead.mkdir()
    (dead / "model.keras").write_bytes(b"half")
    aside = out.with_name(f".{out.name}.old-999999999-0000")
    out.rename(aside)  # as if killed between the two renames
    with pytest.raises(runs.RunFolderError, match=f"left the previous run in {aside}; rename it back"):
        Tr.load_run(out)
    runs.tidy(out)  # what the next train of this folder does first
    assert not dead.exists()
    _old_run_intact(out, metrics, model_bytes)


def test_a_staged_run_without_metrics_is_never_put_in_place(finished):
    from helpers import runs

    out, metrics, model_bytes = finished
    with pytest.raises(RuntimeError, match="has no metrics.json"):
        with runs.staged_run(out) as staging:
            (staging / "model.keras").write_bytes(b"new")
    _old_run_intact(out, metrics, model_bytes)


# ----------------------------------------------------------------------------- damaged run folders


def test_damaged_run_files_are_named(finished, tmp_path):
    import shutil

    from helpers.models import ModelFileError
    from helpers.runs import RunFolderError

    out, _, model_bytes = finished
    garbage = tmp_path / "garbage"
    shutil.copytree(out, garbage)
    (garbage / "metrics.json").write_bytes(b"\x00\xff{not json")
    with pytest.raises(RunFolderError, match=f"{garbage / 'metrics.json'} cannot be read"):
        Tr.load_run(garbage)
    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    (cut / "model.keras").write_bytes(model_bytes[: len(model_bytes) // 3])
    with pytest.raises(ModelFileError, match=f"model file {cut / 'model.keras'} is damaged.*re-run"):
        Tr.load_run(cut)
    bad = tmp_path / "settings"
    shutil.copytree(out, bad)
    m = json.loads((bad / "metrics.json").read_text())
    m["settings"]["length"] = "32; rm -rf /"
    (bad / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(RunFolderError, match="'settings' has no valid length"):
        Tr.load_run(bad)
    m["settings"]["length"] = FRAMES
    (bad / "metrics.json").write_text(json.dumps(m))
    (bad / "splits.json").unlink()
    with pytest.raises(RunFolderError, match="splits.json not found"):
        Tr.load_run(bad)


@pytest.mark.parametrize("config", [b"[1, 2, 3]", b'{"class_name": "Functional", "config": {"layers": 7}}',
                                    b'{"module": "os", "class_name": "system", "config": {"command": "touch X"}}',
                                    b"\xff\xfe garbled"])
def test_hostile_or_garbled_model_config_is_refused_naming_the_file(finished, tmp_path, config, monkeypatch):
    import shutil
    import zipfile

    from helpers.models import ModelFileError

    monkeypatch.chdir(tmp_path)
    out, _, _ = finished
    crafted = tmp_path / "crafted"
    shutil.copytree(out, crafted)
    with zipfile.ZipFile(out / "model.keras") as src, zipfile.ZipFile(crafted / "model.keras", "w") as dst:
        for item in src.infolist():
            dst.writestr(item, config if item.filename == "config.json" else src.read(item.filename))
    with pytest.raises(ModelFileError, match=f"model file {crafted / 'model.keras'} is damaged"):
        Tr.load_run(crafted)
    assert not (tmp_path / "X").exists()


# --------------------------------------------------------------------------- scores with intervals (issue 20)


def test_metrics_json_holds_intervals_that_resample_videos(run, cache):
    from helpers import metrics as M
    from helpers.dataset import video_id

    out, metrics = run
    saved = json.loads((out / "metrics.json").read_text())
    rep = Tr.evaluate(out, cache, "test")
    ids = [video_id(n) for n in rep["names"]]
    for where in (saved, saved["validation"]):
        iv = where["intervals"]
        assert iv["n_clips"] == where["n"] and iv["level"] == 0.95
        assert set(iv["traits"]["extraversion"]) >= {"mae", "accuracy", "pearson_r", "ccc", "r2"}
    iv = saved["intervals"]
    assert iv["n_videos"] == len(set(ids))
    mean = iv["mean_accuracy"]
    assert mean["estimate"] == pytest.approx(saved["mean_accuracy"], abs=1e-6)
    assert mean["low"] <= mean["estimate"] <= mean["high"]
    # The same numbers as scoring the saved predictions directly: nothing is made up on the way.
    direct = M.score_report(rep["y_true"], rep["y_pred"], ids, means=list(saved["train_means"].values()))
    assert direct["mean_accuracy"] == pytest.approx(iv["mean_accuracy"], abs=1e-5)


def test_metrics_json_holds_the_calibration_fitted_on_validation(run, cache):
    from helpers import metrics as M

    out, metrics = run
    cal = metrics["calibration"]
    val, test = Tr.evaluate(out, cache, "validation"), Tr.evaluate(out, cache, "test")
    slope, intercept = M.fit_recalibration(val["y_true"], val["y_pred"])
    assert cal["recalibration"]["openness"]["slope"] == pytest.approx(slope[4], abs=1e-5)
    assert cal["test"]["extraversion"]["sd_ratio"] == pytest.approx(
        M.calibration(test["y_true"], test["y_pred"])["extraversion"]["sd_ratio"], abs=1e-5)
    recal = M.apply_recalibration(test["y_pred"], slope, intercept)
    assert cal["recalibrated_test"]["mean_accuracy"]["estimate"] == pytest.approx(
        M.mean_accuracy(test["y_true"], recal), abs=1e-5)


def test_cli_prints_intervals_and_compares_two_runs(shared, tmp_path, capsys):
    from helpers.__main__ import main

    cache, out, _ = shared
    other = tmp_path / "other"
    assert main(["train", str(cache), "--out", str(other), "--length", str(FRAMES), "--epochs", "1",
                 "--batch-size", "4", "--split-seed", "1", "--seed", "5"]) == 0
    text = capsys.readouterr().out
    assert "resamples of the videos" in text and "[" in text
    assert main(["compare", str(out), str(other), "--cache", str(cache), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_only_a"] == rep["n_only_b"] == 0 and rep["metric"] == "mae"
    mean = rep["mean"]
    assert mean["low"] <= mean["difference"] <= mean["high"]
    assert main(["compare", str(out), str(other), "--cache", str(cache)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"runs: {out.name} = ") and f"{out.name} - other" in text  # folder names head the columns
    mean_row = next(line for line in text.splitlines() if line.startswith("mean "))
    assert f"{mean['difference']:+.4f}" in mean_row
    assert main(["compare", str(out), str(out), "--cache", str(cache)]) == 0
    same = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mean "))
    assert "+0.0000  [+0.0000, +0.0000]" in same or "-0.0000  [-0.0000, -0.0000]" in same
    self_rep = Tr.paired_comparison(out, out, cache)
    assert self_rep["mean"]["difference"] == 0 and self_rep["mean"]["low"] == self_rep["mean"]["high"] == 0


class _CountingModel:
    """Stands in for a Keras model: records each batch's size, answers a function of each clip."""

    def __init__(self):
        self.sizes = []

    def predict_on_batch(self, inputs):
        self.sizes.append(len(inputs["faces"]))
        faces, mask = inputs["faces"], inputs["mask"]
        per_clip = faces.reshape(len(faces), -1).mean(axis=1) + mask.sum(axis=1)
        return np.repeat(per_clip[:, None], len(TRAITS), axis=1)


@pytest.mark.parametrize("clips", [0, 1, Tr.PREDICT_CHUNK, Tr.PREDICT_CHUNK + 3, 3 * Tr.PREDICT_CHUNK])
def test_predict_feeds_one_batch_shape_and_keeps_each_clips_answer(clips):
    rng = np.random.default_rng(clips)
    faces = rng.uniform(size=(clips, 4, 6, 6, 1)).astype("float32")
    mask = rng.uniform(size=(clips, 4)) < 0.7
    model = _CountingModel()
    out = Tr.predict(model, faces, mask)
    assert out.shape == (clips, len(TRAITS)) and out.dtype == np.float64
    assert set(model.sizes) <= {Tr.PREDICT_CHUNK}  # one shape: Keras traces its predict step once
    expected = faces.reshape(clips, 4 * 6 * 6).mean(axis=1) + mask.sum(axis=1)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-6)


# Notebook 05 writes the default model and its training out in cells (tagged below); these
# tests run those cells and hold them to the helpers the command line uses.
NOTEBOOK_05 = Path(__file__).resolve().parents[1] / "notebooks" / "05_model_training.ipynb"


def _run_notebook_cells(tags: list[str], namespace: dict) -> dict:
    cells = json.loads(NOTEBOOK_05.read_text(encoding="utf-8"))["cells"]
    for tag in tags:
        found = [c for c in cells if tag in c.get("metadata", {}).get("tags", [])]
        assert len(found) == 1, f"{NOTEBOOK_05.name}: {len(found)} cells tagged {tag!r}, expected 1"
        exec(compile("".join(found[0]["source"]), f"{NOTEBOOK_05.name}[{tag}]", "exec"), namespace)
    return namespace


def _architecture(model) -> list:
    """Each layer's kind, name and configuration (nested models layer by layer)."""
    import keras

    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.Sequential):
            rows.append(("Sequential", layer.name, _architecture(layer)))
        else:
            config = {k: v for k, v in layer.get_config().items() if k != "name"}
            rows.append((type(layer).__name__, layer.name, json.dumps(config, sort_keys=True, default=str)))
    return rows


def test_notebook_05_builds_the_default_model_layer_by_layer():
    import keras

    from helpers.models import build_light_model

    ns = _run_notebook_cells(["settings", "model"], {})
    keras.utils.set_random_seed(ns["SEED"])
    built = build_light_model(ns["LENGTH"], ns["SIZE"], compile=False)
    assert _architecture(ns["light"]) == _architecture(built)
    assert ns["light"].count_params() == built.count_params()
    # Same seed, same layers in the same order: the same starting weights.
    assert all(np.array_equal(a, b) for a, b in zip(ns["light"].get_weights(), built.get_weights()))


def test_notebook_05_training_cells_give_the_metrics_train_gives(cache, tmp_path):
    ns = _run_notebook_cells(["settings"], {})
    ns.update(CACHE=cache, RUN=tmp_path / "by_hand", LENGTH=FRAMES, EPOCHS=2, BATCH_SIZE=4)
    _run_notebook_cells(["model", "data", "fit", "save"], ns)
    by_hand = ns["metrics"]
    by_train = Tr.train(cache, tmp_path / "train", length=FRAMES, epochs=2, batch_size=4, seed=ns["SEED"],
                        learning_rate=ns["LEARNING_RATE"], patience=ns["PATIENCE"], split_scheme="by-video")
    for key in ("mean_mae", "mean_accuracy", "baseline_mean_mae", "epochs_run", "best_epoch", "params", "n_clips"):
        assert by_hand[key] == pytest.approx(by_train[key], abs=1e-5), key
    for trait in TRAITS:
        assert by_hand["per_trait"][trait]["mae"] == pytest.approx(by_train["per_trait"][trait]["mae"], abs=1e-5)
    assert Tr.read_run(ns["RUN"]).settings == Tr.read_run(tmp_path / "train").settings
