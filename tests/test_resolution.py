"""Exploration at lower resolution: `ModelSpec.downsampled`, when the plan explores that
way, and a real CIFAR-10 search whose exploration trials train on 16x16 images while its
long training and its exported model take the full-size ones.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial

from automl import load_model
from automl.data import load_dataset
from automl.engine._plan import Plan
from automl.engine._resolution import exploration_downsample, takes_raw_images
from automl.engine._timing import Speed
from automl.record import TrialRecord
from automl.spaces import HyperParameters, ModelSpec
from search_spaces import cnn
from tests._budgets import seconds_for_a_split
from tests.conftest import sqlite_url


def _image_spec(side: int = 32, channels: int = 3, sample: int = 600) -> ModelSpec:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (sample, side, side, channels)).astype("uint8")
    return ModelSpec((side, side, channels), "image", "classification", 10, 1000, 4,
                     image_sample=pixels)  # fmt: skip


def test_a_downsampled_spec_takes_full_size_images_and_averages_them():
    spec = _image_spec()
    small = spec.downsampled(2)
    assert small.input_shape == (16, 16, 3) and small.downsample == 2
    raw, x = small.inputs()
    assert tuple(raw.shape[1:]) == (32, 32, 3) and tuple(x.shape[1:]) == (16, 16, 3)
    images = spec.image_sample[:4].astype("float32")
    got = keras.Model(raw, x).predict(images, verbose=0)
    expected = images.reshape(4, 16, 2, 16, 2, 3).mean(axis=(2, 4)) / 255.0
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Patch whitening is fitted on the sample averaged down alike, not the full-size one.
    assert small.image_sample.shape == (600, 16, 16, 3)
    np.testing.assert_allclose(small.image_sample[:4], expected * 255.0, rtol=1e-5)
    assert spec.patch_whitening() is not None and not small._derived


def test_a_model_built_small_takes_raw_images_and_saves(tmp_path):
    """The fast recipe built for 16x16 takes the 32x32 raw images, and loads back in
    safe mode with identical predictions."""
    full = _image_spec()
    small = full.downsampled(2)
    point = dict(cnn.starting_points(small)[0])
    model = cnn.build(HyperParameters(FixedTrial(point)), small)
    assert takes_raw_images(model, small)
    images = full.image_sample[:3]
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        again.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5
    )


@pytest.mark.parametrize(
    ("spec", "split", "constrained", "expected"),
    [
        (_image_spec(), True, False, 2),
        (_image_spec(), False, False, 1),  # no exploration phase: every trial is final
        (_image_spec(), True, True, 1),  # limits or cost objectives: footprints at full size
        (_image_spec(side=24), True, False, 1),  # 12 px is under MIN_SIDE
        (_image_spec(side=8, channels=1), True, False, 1),  # digits as images
    ],
)
def test_exploration_downsamples_only_full_size_images_of_a_split_search(
    spec, split, constrained, expected, monkeypatch
):
    monkeypatch.setenv("AUTOML_EXPLORE_DOWNSAMPLE", "2")
    assert exploration_downsample(spec, split=split, constrained=constrained) == expected


def test_it_is_off_unless_the_setting_asks_for_it(monkeypatch):
    """Off by default: at 55 T on CIFAR-10 it picked a slower configuration to train long
    and lost 7 points (benchmarks/RESULTS.md)."""
    monkeypatch.delenv("AUTOML_EXPLORE_DOWNSAMPLE", raising=False)
    assert exploration_downsample(_image_spec(), split=True, constrained=False) == 1
    monkeypatch.setenv("AUTOML_EXPLORE_DOWNSAMPLE", "1")
    assert exploration_downsample(_image_spec(), split=True, constrained=False) == 1


def test_odd_factors_and_other_kinds_are_refused():
    with pytest.raises(ValueError, match="cannot downsample 30x30 images by 4"):
        _image_spec(side=30).downsampled(4)
    with pytest.raises(ValueError, match="only full-size image specs, by 2 or more"):
        _image_spec().downsampled(2).downsampled(2)
    with pytest.raises(ValueError, match="by 2 or more"):
        _image_spec().downsampled(1)
    vector = ModelSpec((8,), "vector", "classification", 2, 100, 3)
    with pytest.raises(ValueError, match="cannot downsample a vector spec"):
        vector.downsampled(2)


def test_the_small_sample_and_its_fits_are_made_once_per_spec():
    spec = _image_spec()
    first, again = spec.downsampled(2), spec.downsampled(2)
    assert first.image_sample is again.image_sample and first._derived is again._derived
    assert first.patch_whitening() is again.patch_whitening()


def _ran(number: int, seconds: float, estimate: float, downsample: int | None):
    facts = {"epochs": 4, "seconds": seconds, "estimated_epoch_s": estimate}
    if downsample:
        facts["downsample"] = downsample
    return optuna.trial.create_trial(params={}, distributions={}, value=0.5, user_attrs=facts)


def test_calibration_counts_trials_at_the_same_resolution_and_falls_back_to_others():
    """Small images leave fixed costs a larger share of an epoch: a long training at
    full size is calibrated on full-size trials once one ran, on the small ones before."""
    speed = Speed("cnn", 1.0, 0.01, 3.0, 1.0, 0.1, 9.0)
    plan = Plan({"cnn": speed}, 6, None, 0.0, None)
    small = [_ran(0, 1.0 + 4 * 3.0, 1.0, 2), _ran(1, 1.0 + 4 * 3.0, 1.0, 2)]  # 3x slower
    assert plan.calibration(small, "cnn", downsample=2) == pytest.approx(3.0)
    assert plan.calibration(small, "cnn", downsample=1) == pytest.approx(3.0)  # fallback
    full = _ran(2, 1.0 + 4 * 12.0, 10.0, None)  # 1.2x slower at full size
    assert plan.calibration([*small, full], "cnn", downsample=1) == pytest.approx(1.2)
    assert plan.calibration([*small, full], "cnn", downsample=2) == pytest.approx(3.0)


@pytest.mark.slow
def test_a_cifar_search_explores_small_then_trains_the_best_at_full_size(
    tmp_path, cifar_root, cifar_cache, monkeypatch
):
    """A real split search on the CIFAR-10 slice: exploration trials record downsample 2
    and train models that take 32x32 images; the long training is full size; the
    exported model takes the raw 32x32 images."""
    import automl

    monkeypatch.setenv("AUTOML_EXPLORE_DOWNSAMPLE", "2")
    # 90 s split on most days; 2 epochs keep a full training short on slower ones.
    data = load_dataset("cifar10", data_dir=cifar_root, seed=0)
    budget_s = seconds_for_a_split(90, data, "cnn", max_epochs=2)
    result = automl.search(
        "cnn",
        dataset="cifar10",
        data_dir=cifar_root,
        timeout=f"{budget_s}s",
        max_epochs=2,
        seed=0,
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri="none",
        out=tmp_path / "out",
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    plan = summary["plan"]
    assert plan["split"] is not None and plan["explore_downsample"] == 2, plan["description"]
    assert "2x smaller per side" in plan["description"]
    trained = [t for t in result.study.trials if TrialRecord.read(t).epochs]
    explored = [t for t in trained if not TrialRecord.read(t).exploit]
    exploits = [t for t in trained if TrialRecord.read(t).exploit]
    # The cnn space builds every point small (a rare one that cannot would train full).
    assert explored and any(TrialRecord.read(t).downsample == 2 for t in explored)
    assert exploits, [(t.number, t.user_attrs.get("reason")) for t in result.study.trials]
    assert all(TrialRecord.read(t).downsample is None for t in exploits)
    model = load_model(tmp_path / "out" / "best_model.keras")
    assert tuple(model.input_shape[1:]) == (32, 32, 3)


def test_workers_take_the_resolution_the_search_chose():
    """The search's first process records its factor; a worker's plan takes it, whatever
    its own environment decided (README: workers take the leader's resolution)."""
    from automl.engine._setup import _one_run

    study = optuna.create_study()
    leader = Plan({}, 6, None, 0.0, None, explore_downsample=2)
    assert _one_run(leader, study, worker=False) is leader
    worker = _one_run(Plan({}, 6, None, 0.0, None), study, worker=True)
    assert worker.explore_downsample == 2
    _one_run(Plan({}, 6, None, 0.0, None), study, worker=False)  # a later full-size search
    assert _one_run(leader, study, worker=True).explore_downsample == 1
