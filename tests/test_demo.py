"""Tests of helpers.demo: the synthetic demo dataset in the First Impressions V2 layout."""

from __future__ import annotations

import itertools
from dataclasses import replace
import json
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import ANNOTATION_KEYS, SPLITS, TRAITS
from helpers import demo
from helpers import demo_labels as dl
from helpers.demo import (
    ANNOTATION_FILES,
    FACTORS_FILE,
    NOISE_STD,
    factors_from_scores,
    make_demo_dataset,
    plan_demo_dataset,
    render_clip,
    roll_angles,
    scores_from_factors,
)
from helpers.faces import find_face
from helpers.synthetic import HeadSprite, box_iou, gradient_background, place_face

CLIP_NAME = re.compile(r"^[A-Za-z0-9_-]{11}\.\d{3}\.mp4$")
GROUP_NAME = {"train": r"^training80_\d\d$", "validation": r"^validation80_\d\d$", "test": r"^test80_\d\d$"}
TINY = 12
SEED = 5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "data"
    summary = make_demo_dataset(root, n_clips=TINY, seed=SEED, progress=False, workers=1, check_frames=1)
    return root, summary


def decode(path: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return np.stack(frames)


def load_annotation(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


# ------------------------------------------------------------------ layout and annotation format


def test_layout_and_names(tiny):
    root, summary = tiny
    clips = sorted(root.rglob("*.mp4"))
    assert len(clips) == TINY == summary["clips"]
    for clip in clips:
        split, group = clip.relative_to(root).parts[:2]
        assert split in SPLITS
        assert re.match(GROUP_NAME[split], group), group
        assert CLIP_NAME.match(clip.name), clip.name
        assert clip.stat().st_size > 1000
    counts = {s: len(list((root / s).rglob("*.mp4"))) for s in SPLITS}
    assert counts == {"train": 8, "validation": 2, "test": 2}
    assert {s: summary["splits"][s]["clips"] for s in SPLITS} == counts
    assert (root / FACTORS_FILE).is_file()


def test_annotations_are_in_the_real_format(tiny):
    root, _ = tiny
    for split, name in ANNOTATION_FILES.items():
        path = root / name
        assert path.read_bytes()[:2] == b"\x80\x02", "pickle protocol 2, like the real files"
        ann = load_annotation(path)
        assert set(ann) == set(ANNOTATION_KEYS)
        files = {p.name for p in (root / split).rglob("*.mp4")}
        for key in ANNOTATION_KEYS:
            assert set(ann[key]) == files, f"{name}[{key}] keys must be exactly the clips of {split}"
        for trait in TRAITS:
            for value in ann[trait].values():
                assert type(value) is float and 0.0 <= value <= 1.0
        for value in ann["interview"].values():
            assert type(value) is np.float64 and 0.0 <= value <= 1.0


def test_labels_match_the_factors_file(tiny):
    root, _ = tiny
    doc = json.loads((root / FACTORS_FILE).read_text())
    assert doc["noise_std"] == NOISE_STD and len(doc["clips"]) == TINY
    for clip in doc["clips"]:
        assert (root / clip["path"]).is_file()
        ann = load_annotation(root / ANNOTATION_FILES[clip["split"]])
        for trait in TRAITS:
            assert ann[trait][clip["name"]] == pytest.approx(np.clip(clip["scores"][trait] + clip["noise"][trait], 0, 1))
        cap = cv2.VideoCapture(str(root / clip["path"]))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == clip["n_frames"]
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
        cap.release()


def test_videos_shared_across_splits_as_in_the_real_data_and_groups_hold_80():
    plans = plan_demo_dataset(200, seed=0)
    assert {s: sum(p.split == s for p in plans) for s in SPLITS} == {"train": 120, "validation": 40, "test": 40}
    splits_of: dict[str, set] = {}
    person_of: dict[str, dict] = {}
    for p in plans:
        splits_of.setdefault(p.video_id, set()).add(p.split)
        assert person_of.setdefault(p.video_id, p.person) == p.person, "one person per video"
        assert p.name.startswith(p.video_id + ".") and CLIP_NAME.match(p.name)
    assert len({p.name for p in plans}) == 200
    assert max(sum(p.video_id == v for p in plans) for v in splits_of) == 6, "up to 6 clips per video, as in the real data"
    assert any(len(s) > 1 for s in splits_of.values()), "the official splits share people, as the real ones do"
    train_videos = {p.video_id for p in plans if p.split == "train"}
    test = [p for p in plans if p.split == "test"]
    overlap = sum(p.video_id in train_videos for p in test) / len(test)
    assert 0.7 <= overlap <= 0.95, overlap  # the real test split: 0.840
    groups = {}
    for p in plans:
        groups.setdefault(p.group, []).append(p)
    assert {g: len(v) for g, v in groups.items()} == {"training80_01": 80, "training80_02": 40, "validation80_01": 40, "test80_01": 40}


def test_too_few_clips_is_an_error():
    with pytest.raises(ValueError, match="at least 3"):
        plan_demo_dataset(2)


# ------------------------------------------------------------------ determinism and rebuilding


def test_same_seed_same_data_whatever_the_workers(tiny, tmp_path):
    root, _ = tiny
    again = tmp_path / "again"
    make_demo_dataset(again, n_clips=TINY, seed=SEED, progress=False, workers=2, check_frames=0)
    for name in [*ANNOTATION_FILES.values(), FACTORS_FILE]:
        assert (again / name).read_bytes() == (root / name).read_bytes(), name
    for clip in sorted(root.rglob("*.mp4")):
        np.testing.assert_array_equal(decode(clip), decode(again / clip.relative_to(root)))
    other = plan_demo_dataset(TINY, seed=SEED + 1)
    assert [p.labels for p in other] != [p.labels for p in plan_demo_dataset(TINY, seed=SEED)]


def test_command_line_and_rebuilding(tmp_path, capsys):
    from helpers.__main__ import main

    folder = tmp_path / "cli"
    assert main(["demo-data", str(folder), "--clips", "4", "--seed", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 4 and summary["seed"] == 2
    assert summary["megabytes"] > 0 and summary["seconds"] > 0
    # By default a few lines a person reads: counts, the face check, where, what next.
    assert main(["demo-data", str(folder), "--clips", "4", "--seed", "2"]) == 0
    text = capsys.readouterr().out
    assert len(text.splitlines()) <= 4 and "4 clips" in text and "face check" in text
    assert f"python -m helpers prepare {folder}" in text and "{" not in text
    assert len(list(folder.rglob("*.mp4"))) == 4
    # Building again replaces the previous demo data, leaving no stale clip...
    make_demo_dataset(folder, n_clips=3, seed=1, progress=False, workers=1, check_frames=0)
    assert sorted(p.name for p in folder.rglob("*.mp4")) == sorted(p.name for p in plan_demo_dataset(3, seed=1))
    # ...but a folder holding data the demo did not write is refused.
    (tmp_path / "real" / "train").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="train"):
        make_demo_dataset(tmp_path / "real", n_clips=3, progress=False)


# ------------------------------------------------------------------ faces are found, absences are planned


def test_face_detected_in_at_least_95_percent_of_frames(tiny):
    root, summary = tiny
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    seen = hits = absent_hits = absent_seen = 0
    for plan in plan_demo_dataset(TINY, SEED):
        frames = decode(root / plan.relpath)
        boxes = demo.face_boxes(plan)
        for i in np.linspace(0, plan.n_frames - 1, 4).round().astype(int):
            found = cascade.detectMultiScale(cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY), scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
            best = max(found, key=lambda r: r[2] * r[3]) if len(found) else None
            if boxes[i] is None:
                absent_seen += 1
                absent_hits += best is not None
            else:
                seen += 1
                hits += best is not None and box_iou(best, boxes[i]) >= 0.3
    assert seen >= 40
    assert hits / seen >= 0.95, f"face found in {hits}/{seen} frames"
    assert absent_hits == 0 and sum(p.absent is not None for p in plan_demo_dataset(TINY, SEED)) == 1
    assert summary["face_detection_rate"] >= 0.9 and summary["frames_checked"] == TINY


def test_absent_stretch_has_no_face(tiny):
    root, _ = tiny
    (plan,) = [p for p in plan_demo_dataset(TINY, SEED) if p.absent is not None]
    start, stop = plan.absent
    assert 0.2 * plan.n_frames <= stop - start <= 0.55 * plan.n_frames
    frames, boxes = zip(*render_clip(plan, SEED))
    assert list(boxes) == demo.face_boxes(plan)
    assert all(b is None for b in boxes[start:stop]) and all(b is not None for b in boxes[:start] + boxes[stop:])
    np.testing.assert_array_equal(frames[start], frames[stop - 1])  # background only


def test_nuisance_and_absence_do_not_depend_on_labels(monkeypatch):
    """Swap the label draw for another: names, lengths, positions, roll phases and absences must not change.

    (The official splits may: the split kept is the one whose baselines look most like the real ones.)
    """
    before = {p.name: p for p in plan_demo_dataset(300, seed=7)}

    def other_labels(videos, n_videos, rng):
        rng.random(50)  # consume the stream differently
        flat = np.full((len(videos), len(TRAITS)), 0.5)
        return {"person": flat, "scores": flat + 0.01 * rng.standard_normal(flat.shape), "noise": 0 * flat,
                "labels": flat + 0.01 * rng.standard_normal(flat.shape), "interview": np.full(len(videos), 0.5)}

    monkeypatch.setattr(dl, "draw_labels", other_labels)
    after = {p.name: p for p in plan_demo_dataset(300, seed=7)}
    assert sorted(before) == sorted(after)
    assert [p.labels for p in before.values()] != [after[n].labels for n in before]
    keep = ("video_id", "video_index", "n_frames", "face_width", "center", "drift", "absent")
    assert [[getattr(p, k) for k in keep] for p in before.values()] == [[getattr(after[n], k) for k in keep] for n in before]
    assert [p.factors["roll_phase"] for p in before.values()] == [after[n].factors["roll_phase"] for n in before]
    assert sum(p.absent is not None for p in before.values()) == 15


# ------------------------------------------------------------------ labels and factors


def test_label_means_spreads_correlations_and_noise():
    plans = plan_demo_dataset(2000, seed=11)
    labels = np.array([[p.labels[t] for t in TRAITS] for p in plans])
    scores = np.array([[p.scores[t] for t in TRAITS] for p in plans])
    noise = np.array([[p.noise[t] for t in TRAITS] for p in plans])
    assert labels.min() >= 0 and labels.max() <= 1
    # Means and SDs like the real training labels (means 0.476-0.566, SDs 0.134-0.155).
    np.testing.assert_allclose(labels.mean(axis=0), [dl.TRAIT_MEANS[t] for t in TRAITS], atol=0.01)
    assert np.all((labels.std(axis=0) > 0.125) & (labels.std(axis=0) < 0.16)), labels.std(axis=0)
    np.testing.assert_allclose(noise.std(axis=0), NOISE_STD, rtol=0.08)
    np.testing.assert_allclose(labels, np.clip(scores + noise, 0, 1))
    # Traits correlate positively, weaker than the real ones (mean pairwise r 0.3-0.5; real about 0.70).
    corr = np.corrcoef(labels.T)[np.triu_indices(5, 1)]
    assert np.all(corr > 0.15) and 0.3 <= corr.mean() <= 0.5, corr
    for p in plans:  # every part of the label but the noise is in the factors the clip shows
        assert scores_from_factors(p.factors) == pytest.approx(p.scores, abs=1e-9)
    interview = np.array([p.interview for p in plans])
    assert np.corrcoef(interview, labels.mean(axis=1))[0, 1] > 0.9
    absent = np.array([p.absent is not None for p in plans])
    assert absent.sum() == 100
    # Absent-face clips carry average labels (4 standard errors).
    assert np.all(np.abs(labels[absent].mean(axis=0) - labels.mean(axis=0)) < 4 * 0.15 / np.sqrt(absent.sum()))
    lengths = np.array([p.n_frames for p in plans])
    assert 0.05 < (lengths < 32).mean() < 0.15 and lengths.min() >= 20 and lengths.max() <= 150


def test_factor_formulas_and_inverse():
    lo = factors_from_scores({t: 0.0 for t in TRAITS})
    hi = factors_from_scores({t: 1.0 for t in TRAITS})
    assert (lo["roll_cycles_per_clip"], hi["roll_cycles_per_clip"]) == (1.0, 6.0)
    assert (lo["brightness_offset"], hi["brightness_offset"]) == (-50.0, 50.0)
    assert (lo["contrast_gain"], hi["contrast_gain"]) == pytest.approx((0.55, 1.45))
    assert (lo["blur_sigma_face_widths"], hi["blur_sigma_face_widths"]) == (0.035, 0.0)
    assert (lo["side_shadow_opacity"], hi["side_shadow_opacity"]) == (0.8, 0.0)
    scores = dict(zip(TRAITS, [0.1, 0.3, 0.5, 0.7, 0.9]))
    back = scores_from_factors(factors_from_scores(scores))
    assert back == pytest.approx(scores)


#: The formulas demo_factors.json recorded when they were literals (DEMO_VERSION 3): the constants write them the same.
RECORDED_FORMULAS = {
    "extraversion": "roll_cycles_per_clip = 1 + 5 * score; angle(i) = 14 deg * sin(2 pi cycles i / n + roll_phase)",
    "neuroticism": "brightness_offset = 100 * score - 50 (grey levels)",
    "agreeableness": "contrast_gain = 0.55 + 0.9 * score",
    "conscientiousness": "blur_sigma_face_widths = 0.035 * (1 - score)",
    "openness": "side_shadow_opacity = 0.8 * (1 - score)",
}


def test_recorded_formulas_are_written_from_the_constants(monkeypatch):
    formulas = demo.factor_formulas()
    assert {t: formulas[t] for t in RECORDED_FORMULAS} == RECORDED_FORMULAS
    assert "0.11^2 R" in formulas["person"] and "0.088^2 R" in formulas["score"]
    monkeypatch.setattr(demo, "ROLL_AMPLITUDE", 9.5)
    monkeypatch.setattr(demo, "ROLL_CYCLES", (2.0, 4.0))
    monkeypatch.setattr(demo, "BRIGHTNESS_RANGE", (10.0, 40.0))
    monkeypatch.setattr(demo, "CONTRAST_RANGE", (0.7, 1.2))
    monkeypatch.setattr(demo, "MAX_BLUR", 0.05)
    monkeypatch.setattr(demo, "MAX_SHADOW", 0.6)
    monkeypatch.setattr(demo, "WITHIN_SD", 0.07)
    changed = demo.factor_formulas()
    assert changed["extraversion"] == ("roll_cycles_per_clip = 2 + 2 * score; "
                                       "angle(i) = 9.5 deg * sin(2 pi cycles i / n + roll_phase)")
    assert changed["neuroticism"] == "brightness_offset = 30 * score + 10 (grey levels)"
    assert changed["agreeableness"] == "contrast_gain = 0.7 + 0.5 * score"
    assert changed["conscientiousness"] == "blur_sigma_face_widths = 0.05 * (1 - score)"
    assert changed["openness"] == "side_shadow_opacity = 0.6 * (1 - score)"
    assert "0.07^2 R" in changed["score"]
    # and what the formulas say is what the factors are
    f = factors_from_scores({t: 0.5 for t in TRAITS})
    assert (f["roll_cycles_per_clip"], f["brightness_offset"], f["contrast_gain"]) == pytest.approx((3.0, 25.0, 0.95))


def test_side_shadow_follows_its_constants(monkeypatch):
    patch = np.full((40, 40, 3), 200, np.uint8)
    factors = {"brightness_offset": 0.0, "contrast_gain": 1.0, "blur_sigma_face_widths": 0.0,
               "side_shadow_opacity": 0.8}
    before = demo.style_head(patch, (0, 0, 40, 40), factors)[20]
    assert before[20, 0] == 200 and before[0, 0] < 200  # centre untouched, sides darkened
    monkeypatch.setattr(demo, "SHADOW_START", 1.5)  # beyond the face's sides: no shadow at all
    assert (demo.style_head(patch, (0, 0, 40, 40), factors)[20] == 200).all()


def test_demo_folder_says_its_kind(tiny, tmp_path):
    from helpers.dataset import DATASET_FILE, dataset_kind

    root, _ = tiny
    assert dataset_kind(root) == "demo"
    assert json.loads((root / DATASET_FILE).read_text())["version"] == demo.DEMO_VERSION
    # a demo folder of an earlier version (no dataset.json) is rebuilt in place, with one
    folder = tmp_path / "old"
    make_demo_dataset(folder, n_clips=3, seed=1, progress=False, workers=1, check_frames=0)
    (folder / DATASET_FILE).unlink()
    make_demo_dataset(folder, n_clips=3, seed=1, progress=False, workers=1, check_frames=0)
    assert dataset_kind(folder) == "demo"
    # a folder whose dataset.json the demo did not write is refused
    other = tmp_path / "other"
    other.mkdir()
    (other / DATASET_FILE).write_text('{"kind": "first_impressions"}')
    with pytest.raises(FileExistsError, match=DATASET_FILE):
        make_demo_dataset(other, n_clips=3, progress=False)


def _crop(frame: np.ndarray, box) -> np.ndarray:
    """The 48x48 crop helpers.faces takes of a face box (7.5 % trimmed each side, 5 % at the top)."""
    x, y, w, h = box
    x0, x1 = round(x + 0.075 * w), round(x + 0.925 * w)
    y0, y1 = round(y + 0.05 * h), round(y + h)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray[y0:y1, x0:x1], (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_each_factor_survives_a_48x48_grayscale_crop():
    base = plan_demo_dataset(3, seed=0)[0]

    def crop_for(trait: str, score: float) -> np.ndarray:
        scores = dict(base.scores, **{t: 0.5 for t in TRAITS})
        scores[trait] = score
        factors = dict(base.factors, **factors_from_scores(scores))
        plan = demo.ClipPlan(**{**base.__dict__, "factors": factors, "absent": None})
        frame, box = next(render_clip(plan, 0))
        return _crop(frame, box)

    def sharpness(c):
        return cv2.Laplacian(c, cv2.CV_32F).var()

    def side_ratio(c):
        return (c[8:40, :5].mean() + c[8:40, -5:].mean()) / (2 * c[8:40, 19:29].mean())

    lo, hi = 0.2, 0.8
    assert crop_for("neuroticism", hi).mean() - crop_for("neuroticism", lo).mean() > 40
    assert crop_for("agreeableness", hi).std() > 1.5 * crop_for("agreeableness", lo).std()
    assert sharpness(crop_for("conscientiousness", hi)) > 1.5 * sharpness(crop_for("conscientiousness", lo))
    assert side_ratio(crop_for("openness", hi)) > side_ratio(crop_for("openness", lo)) + 0.2


def test_roll_frequency_is_in_time_not_in_single_frames():
    n_long, n_short = 150, 45
    for cycles in (1.0, 2.0, 4.0, 6.0):
        for n in (n_long, n_short, 24):
            angles = roll_angles(n, cycles, phase=0.3)
            assert np.abs(angles).max() <= demo.ROLL_AMPLITUDE
            # 32 frames spread over the clip (or all of a short clip) still show the frequency.
            idx = np.unique(np.linspace(0, n - 1, min(32, n)).round().astype(int))
            seq = angles[idx] - angles[idx].mean()
            freqs = np.fft.rfftfreq(len(idx), d=1 / len(idx))  # cycles per clip
            assert abs(freqs[np.argmax(np.abs(np.fft.rfft(seq)))] - cycles) <= 1.0
    # ...while the per-frame spread of angles is about the same for every frequency.
    spreads = [np.std(roll_angles(120, c, 0.3)) for c in np.linspace(1, 6, 11)]
    assert max(spreads) - min(spreads) < demo.ROLL_AMPLITUDE / 8 and min(spreads) > 0.65 * demo.ROLL_AMPLITUDE


def test_place_face_is_one_frame_of_the_sprite():
    """One rendering path: place_face draws what the demo's sprite draws, face box included."""
    background = gradient_background(240, 320, np.random.default_rng(0))
    for width, angle, center in [(70, 0.0, (160.0, 120.0)), (110, 8.0, (140.0, 115.0)), (90, -8.0, (200.0, 130.0))]:
        expected, expected_box = place_face(background, center, width, angle)
        sprite = HeadSprite(width)
        frame, box = sprite.paste(background, center, angle)
        assert np.array_equal(frame, expected) and np.allclose(box, expected_box)
        assert box[2] == width and not np.array_equal(frame, background)
        styled, _ = HeadSprite(width, style=lambda patch, face_box: patch // 2).paste(background, center, angle)
        assert styled.sum() < frame.sum()  # the style reaches the pixels


@pytest.mark.parametrize("fringe", [0.0, demo.FRINGE_OPACITY], ids=["group A", "group B (fringe)"])
def test_face_found_at_the_extremes_of_the_factors(fringe):
    """Corners of the photometric factors (scores 0.1 / 0.9: rarer than 1 in 1000), both roll extremes, small and large faces."""
    rng = np.random.default_rng(0)
    backgrounds = [gradient_background(240, 320, rng) for _ in range(4)]
    hits = n = 0
    for combo in itertools.product((0.1, 0.9), repeat=4):
        factors = {**factors_from_scores(dict(zip(TRAITS, (0.5,) + combo))), "fringe_opacity": fringe}
        for width, angle in ((70, -demo.ROLL_AMPLITUDE), (110, demo.ROLL_AMPLITUDE)):
            sprite = HeadSprite(width, style=lambda patch, face_box: demo.style_head(patch, face_box, factors))
            frame, box = sprite.paste(backgrounds[n % 4], (160 + rng.uniform(-40, 40), 120 + rng.uniform(-12, 12)), angle)
            found = find_face(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))  # the settings prepare uses
            hits += found is not None and box_iou(found, box) >= 0.3
            n += 1
    assert hits / n >= 0.95, f"face found in {hits}/{n} extreme frames"


# ----------------------------------------------------------------------------- person groups (notebook 08)


def test_person_groups_keep_every_clip_and_bias_only_group_b_labels():
    plain, grouped = plan_demo_dataset(200, 0), plan_demo_dataset(200, 0, groups=True)
    assert [p.name for p in plain] == [p.name for p in grouped]
    assert [p.split for p in plain] == [p.split for p in grouped]
    videos = {p.video_id for p in grouped}
    group_of = {p.video_id: p.person_group for p in grouped}
    assert all(group_of[p.video_id] == p.person_group for p in grouped)  # one group per person
    in_b = sum(g == "B" for g in group_of.values())
    assert in_b == round(demo.GROUP_B_SHARE * len(videos)) and 0 < in_b < len(videos) / 2
    for before, after in zip(plain, grouped):
        assert after.true_labels == before.labels and after.scores == before.scores
        shift = demo.RATER_BIAS if after.person_group == "B" else {}
        for t in TRAITS:
            assert after.labels[t] == pytest.approx(np.clip(before.labels[t] + shift.get(t, 0.0), 0, 1))
        assert after.factors["fringe_opacity"] == (demo.FRINGE_OPACITY if shift else 0.0)
        assert {k: v for k, v in after.factors.items() if k != "fringe_opacity"} == before.factors


def test_groups_do_not_depend_on_labels_or_splits(monkeypatch):
    """Shifting every label leaves the groups as they were: they come from their own stream."""
    grouped = {p.video_id: p.person_group for p in plan_demo_dataset(200, 0, groups=True)}
    original = dl.draw_labels

    def shifted(*args, **kwargs):
        out = original(*args, **kwargs)
        return {k: (v * 0.5 if k in ("labels", "scores") else v) for k, v in out.items()}

    monkeypatch.setattr(dl, "draw_labels", shifted)
    again = {p.video_id: p.person_group for p in plan_demo_dataset(200, 0, groups=True)}
    assert again == grouped


def test_planted_bias_recovered_by_the_audit_of_labels_against_true_scores_on_the_test_split():
    from helpers.audit import audit_by_group

    test = [p for p in plan_demo_dataset(200, 0, groups=True) if p.split == "test"]
    rated = np.array([[p.labels[t] for t in TRAITS] for p in test])
    true = np.array([[p.true_labels[t] for t in TRAITS] for p in test])
    rep = audit_by_group(true, rated, [p.video_id for p in test], [p.person_group for p in test],
                         reference="A", against="true scores")
    assert rep["per_group"]["B"]["n_videos"] >= 3
    for t in TRAITS:
        gap = rep["gaps"]["B"][t]["signed_error"]
        planted = demo.RATER_BIAS.get(t, 0.0)
        assert gap["low"] <= planted <= gap["high"], (t, gap)
        assert (gap["high"] < 0) == (planted < 0), (t, gap)  # the biased traits' gaps exclude 0


def test_fringe_darkens_only_the_top_of_the_head():
    from helpers.synthetic import head_patch, load_face_photo

    patch, face_box = head_patch(load_face_photo())
    factors = factors_from_scores({**dict.fromkeys(TRAITS, 0.5), "conscientiousness": 1.0})  # no blur
    plain = demo.style_head(patch, face_box, factors).astype(int)
    fringed = demo.style_head(patch, face_box, {**factors, "fringe_opacity": demo.FRINGE_OPACITY}).astype(int)
    rows = np.nonzero(np.abs(fringed - plain).max(axis=(1, 2)) > 0)[0]
    fy, fh = face_box[1], face_box[3]
    assert fringed.sum() < plain.sum() and rows.max() < fy + demo.FRINGE_DEPTH * fh + 1  # eyes untouched
    # and it shows in the 48x48 crop of a rendered clip
    plan = next(p for p in plan_demo_dataset(40, 3, groups=True) if p.person_group == "B" and p.absent is None)
    twin = replace(plan, factors={**plan.factors, "fringe_opacity": 0.0})
    (b, box), (a, _) = next(render_clip(plan, 3)), next(render_clip(twin, 3))
    assert np.abs(_crop(b, box) - _crop(a, box)).max() > 20


def test_dataset_with_groups_writes_the_group_file_and_a_rebuild_without_removes_it(tmp_path, capsys):
    from helpers.__main__ import main
    from helpers.audit import read_groups

    folder = tmp_path / "demo"
    summary = make_demo_dataset(folder, n_clips=12, seed=2, progress=False, workers=1, check_frames=0, groups=True)
    factors = json.loads((folder / FACTORS_FILE).read_text())
    assert read_groups(folder / demo.GROUPS_FILE) == {c["video_id"]: c["person_group"] for c in factors["clips"]}
    assert factors["person_groups"]["rater_bias"] == demo.RATER_BIAS
    assert summary["person_groups"] == {g: sum(v == g for v in read_groups(folder / demo.GROUPS_FILE).values())
                                        for g in demo.PERSON_GROUPS}
    ann = load_annotation(folder / ANNOTATION_FILES["train"])
    for c in (c for c in factors["clips"] if c["split"] == "train"):
        assert ann["agreeableness"][c["name"]] == pytest.approx(c["labels"]["agreeableness"])
    make_demo_dataset(folder, n_clips=12, seed=2, progress=False, workers=1, check_frames=0)
    assert not (folder / demo.GROUPS_FILE).exists()
    assert "person_groups" not in json.loads((folder / FACTORS_FILE).read_text())
    assert main(["demo-data", str(tmp_path / "cli"), "--clips", "12", "--groups"]) == 0
    assert "person groups (videos): A " in capsys.readouterr().out


def test_module_docstring_states_the_group_constants():
    doc = " ".join(demo.__doc__.split())
    for text in (f"{100 * demo.GROUP_B_SHARE:.0f} %", f"({demo.FRINGE_DEPTH:g})", f"({demo.FRINGE_OPACITY:g})",
                 f"{demo.GROUPS_FILE}"):
        assert text in doc, text
    for trait, shift in demo.RATER_BIAS.items():
        assert f"{shift:g}" in doc and trait in doc


def test_series_keeps_the_demo_with_groups_beside_the_plain_one(tmp_path, monkeypatch):
    from helpers import series

    monkeypatch.setattr(series, "DEMO_CLIPS", 12)
    monkeypatch.setattr(series, "GROUPS_DEMO_CLIPS", 14)
    grouped = series.ensure_demo_data(tmp_path, groups=True)
    plain = series.ensure_demo_data(tmp_path)
    assert grouped.name == "demo_groups" and plain.name == "demo"
    assert (grouped / demo.GROUPS_FILE).is_file() and not (plain / demo.GROUPS_FILE).exists()
    stamp = (grouped / FACTORS_FILE).stat().st_mtime_ns
    assert series.ensure_demo_data(tmp_path, groups=True) == grouped  # reused, not rebuilt
    assert (grouped / FACTORS_FILE).stat().st_mtime_ns == stamp


def test_series_trains_the_groups_run_for_its_epochs_and_again_when_they_change(tmp_path, monkeypatch):
    from helpers import series, training

    epochs_trained = []

    def fake_train(cache, run, **options):
        epochs_trained.append(options["epochs"])
        run.mkdir(parents=True, exist_ok=True)
        (run / "metrics.json").write_text(json.dumps({
            "version": training.RUN_VERSION, "split_scheme": options["split_scheme"], "epochs": options["epochs"]}))

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(series, "ensure_cache", lambda root, groups=False: root / "cache")
    assert series.ensure_trained_run(tmp_path, groups=True).name == "light_groups"
    series.ensure_trained_run(tmp_path, groups=True)  # reused
    assert epochs_trained == [series.GROUPS_EPOCHS]
    series.ensure_trained_run(tmp_path, groups=True, epochs=3)
    series.ensure_trained_run(tmp_path)
    assert epochs_trained == [series.GROUPS_EPOCHS, 3, training.DEFAULT_EPOCHS]
