"""Tests for helpers.labels: label statistics, both baselines, split schemes, the `labels` command."""

from __future__ import annotations

import json
import pickle
import statistics
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import TRAITS
from helpers import labels as lb
from helpers.__main__ import main
from helpers.dataset import load_annotations

# --------------------------------------------------------------------------- fixtures

#: video id -> clips per split: shared ids across splits, single-clip videos, split-only videos.
LAYOUT = {
    "J4GQm9j0JZ0": {"train": 3, "validation": 1, "test": 1},
    "htH89DBizno": {"train": 2, "test": 2},
    "a-b_c.d1234": {"train": 1},                     # ids may hold '.', '-', '_'
    "testOnly001": {"test": 2},
    "valOnly0001": {"validation": 1},
    "trainVal001": {"train": 2, "validation": 1},
    "trainTest01": {"train": 1, "test": 1},
}
FILES = {"train": "annotation_training.pkl", "validation": "annotation_validation.pkl", "test": "annotation_test.pkl"}


def layout_tables(layout: dict[str, dict[str, int]], seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """split -> trait/interview -> {clip: score}; a person effect per video so videos differ."""
    rng = np.random.default_rng(seed)
    tables: dict[str, dict[str, dict]] = {s: {t: {} for t in (*TRAITS, "interview")} for s in FILES}
    for vid, splits in layout.items():
        person = rng.uniform(0.2, 0.8, size=len(TRAITS))
        number = 0
        for split, count in splits.items():
            for _ in range(count):
                clip = f"{vid}.{number:03d}.mp4"
                number += 1
                for t, p in zip(TRAITS, person):
                    tables[split][t][clip] = float(np.clip(p + rng.normal(0, 0.1), 0, 1))
                tables[split]["interview"][clip] = np.float64(rng.uniform())
    return tables


def _binstring(raw: bytes) -> bytes:
    return b"U" + bytes([len(raw)]) + raw


def python2_pickle(table: dict[str, dict[str, float]]) -> bytes:
    """Protocol 2 as Python 2 + old numpy wrote it: BINFLOAT traits, ``numpy.core.multiarray.scalar`` interview."""
    out = [b"\x80\x02}q\x00("]
    for trait, scores in table.items():
        out.append(_binstring(trait.encode()) + b"}(")
        for clip, value in scores.items():
            out.append(_binstring(clip.encode()))
            if trait == "interview":
                out.append(b"cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\n" + _binstring(b"f8") + b"K\x00K\x01\x87R"
                           b"(K\x03" + _binstring(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                           + _binstring(struct.pack("<d", value)) + b"\x86R")
            else:
                out.append(b"G" + struct.pack(">d", value))
        out.append(b"u")
    out.append(b"u.")
    return b"".join(out)


def write_files(folder: Path, tables: dict[str, dict[str, dict[str, float]]]) -> dict[str, Path]:
    """The training file in Python 2 opcodes, the others as Python 3 writes protocol 2 (numpy.float64 interview)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, table in tables.items():
        path = folder / FILES[split]
        data = python2_pickle(table) if split == "train" else pickle.dumps(table, protocol=2)
        assert data.startswith(b"\x80\x02") and b"multiarray" in data
        path.write_bytes(data)
        paths[split] = path
    return paths


@pytest.fixture
def files(tmp_path) -> tuple[Path, dict[str, Path], dict]:
    tables = layout_tables(LAYOUT)
    return tmp_path / "ann", write_files(tmp_path / "ann", tables), tables


def five(tables: dict) -> dict[str, dict[str, dict[str, float]]]:
    """The tables without interview, as load_annotations' values compare."""
    return {s: {t: {c: float(v) for c, v in tab[t].items()} for t in TRAITS} for s, tab in tables.items()}


# --------------------------------------------------------------------------- slow, obvious reference


def vid(clip: str) -> str:
    return clip.rsplit(".", 2)[0]


def slow_report(by_split: dict) -> dict:
    """Every statistic with plain loops and the statistics module, independent of helpers.labels."""
    train, test = by_split["train"], by_split["test"]
    train_videos = {vid(c) for c in train[TRAITS[0]]}
    out: dict = {"splits": {}, "clips_with_video_in_training": {}}
    for split in ("train", "validation", "test"):
        clips = list(by_split[split][TRAITS[0]])
        out["splits"][split] = {"clips": len(clips), "videos": len({vid(c) for c in clips})}
    for split in ("validation", "test"):
        clips = list(by_split[split][TRAITS[0]])
        out["clips_with_video_in_training"][split] = sum(vid(c) in train_videos for c in clips) / len(clips)
    acc_mean, acc_same = [], []
    for t in TRAITS:
        m = statistics.fmean(train[t].values())
        err_mean, err_same = [], []
        for clip, y in test[t].items():
            same = [v for c, v in train[t].items() if vid(c) == vid(clip)]
            err_mean.append(abs(y - m))
            err_same.append(abs(y - (statistics.fmean(same) if same else m)))
        acc_mean.append(1 - statistics.fmean(err_mean))
        acc_same.append(1 - statistics.fmean(err_same))
    out["baselines"] = {"train_mean": statistics.fmean(acc_mean), "same_video": statistics.fmean(acc_same)}
    out["trait_mean"] = {t: statistics.fmean(train[t].values()) for t in TRAITS}
    out["trait_sd"] = {t: statistics.pstdev(train[t].values()) for t in TRAITS}
    clips = sorted(train[TRAITS[0]])
    out["trait_correlation"] = [[statistics.correlation([train[a][c] for c in clips], [train[b][c] for c in clips])
                                 for b in TRAITS] for a in TRAITS]
    share = {}
    for t in TRAITS:
        every = {c: v for s in by_split.values() for c, v in s[t].items()}
        videos: dict[str, list[float]] = {}
        for c, v in every.items():
            videos.setdefault(vid(c), []).append(v)
        within = statistics.fmean(statistics.pvariance(vs) for vs in videos.values() if len(vs) >= 2)
        share[t] = 1 - within / statistics.pvariance(every.values())
    out["between_video_share"] = share
    return out


def assert_close(actual, expected, path="report"):
    if isinstance(expected, dict):
        assert set(actual) == set(expected), path
        for k in expected:
            assert_close(actual[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, float), path
        assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12), path
    else:
        assert actual == expected, path


# --------------------------------------------------------------------------- statistics


def test_report_matches_slow_reference(files):
    folder, paths, tables = files
    by_split = lb.load_label_files([folder])
    assert by_split == five(tables)  # both pickle styles read back exactly
    report = lb.label_report(by_split)
    assert report["traits"] == list(TRAITS)
    expected = slow_report(five(tables))
    assert_close({k: v for k, v in report.items() if k != "traits"}, expected)
    # The layout's own figures, by hand: 9 training clips of 5 videos; test 6 clips of 4 videos, 4 of them
    # (J4GQ 1, htH8 2, trainTest 1) from videos with training clips; validation 3 clips, 2 with training clips.
    assert report["splits"] == {"train": {"clips": 9, "videos": 5}, "validation": {"clips": 3, "videos": 3},
                                "test": {"clips": 6, "videos": 4}}
    assert report["clips_with_video_in_training"] == {"validation": 2 / 3, "test": 4 / 6}


def test_hand_computed_baselines_and_share():
    train = {t: {"A.000.mp4": 0.2, "A.001.mp4": 0.4, "B.000.mp4": 0.9} for t in TRAITS}
    test = {t: {"A.002.mp4": 0.5, "C.000.mp4": 0.6} for t in TRAITS}
    by_split = {"train": train, "test": test}
    # train mean 0.5: errors 0 and 0.1; same video: A -> 0.3 (error 0.2), C has none -> 0.5 (error 0.1).
    assert lb.baselines(by_split) == pytest.approx({"train_mean": 0.95, "same_video": 0.85})
    # Two videos of two clips: within variance 0.01 each, total variance 0.05 -> share 0.8.
    two = {t: {"A.000.mp4": 0.2, "A.001.mp4": 0.4, "B.000.mp4": 0.6, "B.001.mp4": 0.8} for t in TRAITS}
    assert lb.between_video_share(two) == pytest.approx({t: 0.8 for t in TRAITS})
    # A single-clip video adds to the total variance but not to the within-video mean.
    three = {t: {**two[t], "C.000.mp4": 0.5} for t in TRAITS}
    total = statistics.pvariance([0.2, 0.4, 0.6, 0.8, 0.5])
    assert lb.between_video_share(three) == pytest.approx({t: 1 - 0.01 / total for t in TRAITS})


def test_correlation_r2_and_undefined_cases():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    table = {"extraversion": x, "neuroticism": 2 * x + 1, "agreeableness": -x,
             "conscientiousness": rng.normal(size=50), "openness": rng.normal(size=50)}
    ann = {t: {f"v{i}.000.mp4": float(v) for i, v in enumerate(vals)} for t, vals in table.items()}
    r = lb.trait_correlation(ann)
    assert r[0][1] == pytest.approx(1.0) and r[0][2] == pytest.approx(-1.0)
    assert lb.r2_from_others(ann, "extraversion") == pytest.approx(1.0)
    assert lb.r2_from_others(ann, "openness") < 0.3
    assert lb.mean_pairwise_correlation([[1, 0.2], [0.2, 1]]) == pytest.approx(0.2)
    constant = {t: {f"v{i}.000.mp4": 0.5 if t == "openness" else float(i) / 10 for i in range(4)} for t in TRAITS}
    r = lb.trait_correlation(constant)
    assert r[4] == [None] * 5 and r[0][1] == pytest.approx(1.0)
    singles = {t: {"a.000.mp4": 0.1, "b.000.mp4": 0.9} for t in TRAITS}
    assert lb.between_video_share(singles) == {t: None for t in TRAITS}


def test_report_needs_train_and_test_and_clips_in_one_split(files):
    _, _, tables = files
    by_split = five(tables)
    with pytest.raises(ValueError, match=r"test annotations \(annotation_test.pkl\)"):
        lb.label_report({"train": by_split["train"]})
    no_val = lb.label_report({"train": by_split["train"], "test": by_split["test"]})
    assert no_val["splits"]["validation"] == {"clips": 0, "videos": 0}
    assert no_val["clips_with_video_in_training"]["validation"] is None
    clash = {**by_split, "validation": {t: {**by_split["validation"][t], **by_split["test"][t]} for t in TRAITS}}
    with pytest.raises(ValueError, match="both the validation and the test"):
        lb.merge_splits(clash)


# --------------------------------------------------------------------------- files and the command


def test_command_json_on_folder_and_files(files, capsys):
    folder, paths, tables = files
    assert main(["labels", str(folder), "--json"]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    assert main(["labels", *map(str, paths.values()), "--json"]) == 0
    from_files = json.loads(capsys.readouterr().out)
    assert from_folder == from_files
    assert set(from_folder) == {"traits", "splits", "clips_with_video_in_training", "baselines", "trait_mean",
                                "trait_sd", "trait_correlation", "between_video_share"}
    assert len(from_folder["trait_correlation"]) == 5 and all(len(row) == 5 for row in from_folder["trait_correlation"])
    assert_close({k: v for k, v in from_folder.items() if k != "traits"}, slow_report(five(tables)))


def test_command_plain_text(files, capsys):
    folder, _, tables = files
    assert main(["labels", str(folder)]) == 0
    text = capsys.readouterr().out
    report = lb.label_report(five(tables))
    assert "train" in text and f"{report['splits']['test']['clips']:>7} clips from" in text
    assert f"{report['baselines']['same_video']:.4f}" in text and f"{report['baselines']['train_mean']:.4f}" in text
    assert "66.7%" in text  # test clips whose video has training clips
    for t in TRAITS:
        assert any(line.startswith(t) and f"{report['trait_mean'][t]:.3f}" in line for line in text.splitlines())


def test_command_errors_name_the_path(tmp_path, files, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["labels", str(empty)]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "annotation_training.pkl" in err
    assert main(["labels", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    _, paths, tables = files
    odd = tmp_path / "scores.pkl"
    odd.write_bytes(pickle.dumps(tables["train"], protocol=2))
    assert main(["labels", str(odd), str(paths["test"])]) == 2
    err = capsys.readouterr().err
    assert str(odd) in err and "name it like annotation_training.pkl" in err
    assert main(["labels", str(paths["validation"]), str(paths["test"])]) == 2
    assert "need the train annotations (annotation_training.pkl)" in capsys.readouterr().err


# --------------------------------------------------------------------------- split schemes


def clips_of(counts: list[int]) -> list[str]:
    return [f"video{v:05d}.{n:03d}.mp4" for v, k in enumerate(counts) for n in range(k)]


def official_of(names: list[str], seed: int = 0) -> dict[str, str]:
    """Clip-level random official splits 60/20/20 (shares videos across splits, like the real ones)."""
    rng = np.random.default_rng(seed)
    cut = np.repeat(["train", "validation", "test"], [len(names) - 2 * (len(names) // 5), len(names) // 5,
                                                       len(names) // 5])
    return dict(zip(names, rng.permutation(cut).tolist()))


def test_official_scheme_returns_official_splits():
    names = clips_of([3, 1, 6, 2, 2, 4])
    official = official_of(names)
    assert lb.assign_splits(reversed(names), official, "official", split_seed=5) == {c: official[c] for c in sorted(names)}
    with pytest.raises(ValueError, match="no official split"):
        lb.assign_splits(names + ["other.000.mp4"], official)
    with pytest.raises(ValueError, match="unknown split scheme 'random'"):
        lb.assign_splits(names, official, "random")


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 6), min_size=30, max_size=120), seed=st.integers(0, 2**32 - 1),
       official_seed=st.integers(0, 100))
def test_by_video_keeps_videos_whole_in_official_proportions(counts, seed, official_seed):
    names = clips_of(counts)
    official = official_of(names, official_seed)
    splits = lb.assign_splits(names, official, "by-video", split_seed=seed)
    assert sorted(splits) == sorted(names)
    per_video: dict[str, set[str]] = {}
    for clip, split in splits.items():
        per_video.setdefault(vid(clip), set()).add(split)
    assert all(len(s) == 1 for s in per_video.values())  # no video in two splits
    # Each boundary between splits moves by at most half the largest video: train and test have one boundary.
    for split, tolerance in (("train", max(counts) / 2), ("validation", max(counts)), ("test", max(counts) / 2)):
        target = sum(s == split for s in official.values())
        got = sum(s == split for s in splits.values())
        assert abs(got - target) <= tolerance, (split, got, target)


def test_by_video_is_deterministic_and_seeded():
    names = clips_of([1, 2, 3, 4, 5, 6] * 10)
    official = official_of(names)
    first = lb.assign_splits(names, official, "by-video")  # split_seed defaults to 0
    assert lb.by_video_splits(list(reversed(names)) + names[:5], official, split_seed=0) == first
    assert lb.assign_splits(names, official, "by-video", split_seed=1) != first
    official_overlap = lb.clips_with_video_in_training(
        {s: {TRAITS[0]: {c: 0.5 for c in names if official[c] == s}} for s in ("train", "validation", "test")})
    assert official_overlap["test"] > 0.5  # the official-style split shares videos; by-video shares none
    by_video = lb.clips_with_video_in_training(
        {s: {TRAITS[0]: {c: 0.5 for c in names if first[c] == s}} for s in ("train", "validation", "test")})
    assert by_video == {"validation": 0.0, "test": 0.0}


def test_by_video_refuses_too_few_videos():
    names = clips_of([6, 6])
    official = dict(zip(names, ["train"] * 8 + ["validation"] * 2 + ["test"] * 2))
    with pytest.raises(ValueError, match="too few to regroup"):
        lb.assign_splits(names, official, "by-video")


def test_load_annotations_and_label_files_agree(files):
    folder, paths, _ = files
    by_split = lb.load_label_files([paths["train"], paths["test"]])
    assert set(by_split) == {"train", "test"}
    assert by_split["train"] == {t: load_annotations(paths["train"])[t] for t in TRAITS}


# --------------------------------------------------------------------------- hostile files name the file


def test_a_clip_name_without_video_id_names_the_file(files, capsys):
    folder, paths, tables = files
    odd = {t: {"no-number-here": 0.5} for t in TRAITS}
    paths["test"].write_bytes(pickle.dumps(odd, protocol=2))
    assert main(["labels", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: AnnotationFileError") and str(paths["test"]) in err[0], err


@pytest.mark.parametrize("kind", ["shared references", "100k-deep nesting"])
def test_hostile_pickles_end_labels_with_one_line_naming_the_file(files, capsys, kind):
    import time

    folder, paths, _ = files
    if kind == "shared references":
        bomb: list = [0.5]
        for _ in range(40):
            bomb = [bomb] * 10
        data = pickle.dumps({t: {"J4GQm9j0JZ0.000.mp4": bomb} for t in TRAITS}, protocol=2)
    else:
        depth = 100_000
        data = (b"\x80\x02}(" + b"".join(b"X" + len(t).to_bytes(4, "little") + t.encode() + b"}X\x13\x00\x00\x00"
                                        b"J4GQm9j0JZ0.000.mp4" + b"]" * depth + b"K\x01" + b"a" * depth + b"s"
                                        for t in TRAITS) + b"u.")
    paths["train"].write_bytes(data)
    start = time.monotonic()
    assert main(["labels", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: AnnotationFileError") and str(paths["train"]) in err[0], err
    assert "list" in err[0] and len(err[0]) < 1000 and time.monotonic() - start < 10
