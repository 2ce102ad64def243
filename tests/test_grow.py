"""Growing a long training: a wider model of its configuration when its time holds enough
of that model's epochs (`automl.engine._grow`, the spaces' `grow`).

Real data: scikit-learn's digits as 8x8 grayscale images; real Optuna studies.
"""

from __future__ import annotations

import dataclasses
import json
import time

import keras
import optuna
import pytest

import automl
from automl.data import from_arrays
from automl.engine import _grow, _plan, _timing
from automl.engine._grow import (
    GROW_LEAST_PLAN_EPOCHS,
    GROW_MIN_EPOCHS,
    GROW_PLAN_EPOCHS,
    Grower,
    GrownPace,
)
from automl.engine._phases import (
    UNCAPPED_EPOCHS,
    Split,
    exploit_epoch_cap,
    make_split,
    start_exploiting,
)
from automl.engine._plan import make_plan
from automl.engine._setup import model_spec
from automl.engine._timing import measure_grown
from automl.objective import Objective
from automl.record import TrialRecord
from automl.spaces import Space
from search_spaces import auto, cnn, resolve_space
from tests._budgets import seconds_for_a_split
from tests._digits import digits_as
from tests.conftest import sqlite_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

X = {"x": optuna.distributions.FloatDistribution(0.0, 10.0)}


@pytest.fixture(scope="module")
def digits_images():
    """Digits as 8x8 images, and their spec as a search makes it (6 epochs a trial)."""
    data = from_arrays(*digits_as("image"), kind="image", name="digits_image")
    return data, model_spec(data, data.encode(None), 6)


def test_the_cnn_space_widens_every_stage_after_the_first_one_step():
    """The fast recipe's 32/64/128 grows to 32/128/256, the width measured at 165 T."""
    wider = cnn.grow(dict(cnn.FAST_RECIPE), None)
    assert (wider["filters_1"], wider["filters_2"], wider["filters_3"]) == (32, 128, 256)
    assert {k: v for k, v in wider.items() if not k.startswith("filters_")} == {
        k: v for k, v in cnn.FAST_RECIPE.items() if not k.startswith("filters_")
    }
    assert cnn.grow(wider, None) is None  # the widest choices already
    assert cnn.grow({**cnn.FAST_RECIPE, "stages": 1}, None) is None  # no later stage


def test_auto_grows_the_chosen_family_under_its_prefix(digits_images):
    _, spec = digits_images
    recipe = auto.starting_points(spec)[0]
    assert recipe["family"] == "cnn"
    wider = auto.grow(recipe, spec)
    assert wider["family"] == "cnn" and wider["cnn.filters_2"] == 2 * recipe["cnn.filters_2"]
    assert set(wider) == set(recipe)
    other = auto.grow({**recipe, "vocab_size": 1000}, spec)  # a param of no family
    assert other["vocab_size"] == 1000
    residual = next(p for p in auto.starting_points(spec) if p["family"] == "resnet")
    assert auto.grow(residual, spec) is None  # resnet has no `grow`


def test_a_wider_point_outside_the_overrides_is_not_grown():
    space = dataclasses.replace(resolve_space("cnn"), overrides={"filters_3": [64, 128]})
    assert space.grown(dict(cnn.FAST_RECIPE), None) is None
    assert resolve_space("cnn").grown(dict(cnn.FAST_RECIPE), None) is not None
    assert Space(label="mine", build=lambda hp, spec: None).grown({"x": 1}, None) is None
    # A user's space grows through its own `grow`, inside its overrides.
    doubles = Space(label="mine", build=lambda hp, spec: None,
                    grow=lambda params, spec: {**params, "units": 2 * params["units"]})  # fmt: skip
    assert doubles.grown({"units": 8}, None) == {"units": 16}
    narrowed = dataclasses.replace(doubles, overrides={"units": {"min": 4, "max": 8}})
    assert narrowed.grown({"units": 8}, None) is None
    # A value a config fixes is no trial param: `grow` sees it, the wider point omits it.
    fixed = dataclasses.replace(resolve_space("cnn"), overrides={"stages": 3})
    explored = {k: v for k, v in cnn.FAST_RECIPE.items() if k != "stages"}
    wider = fixed.grown(explored, None)
    assert "stages" not in wider and (wider["filters_2"], wider["filters_3"]) == (128, 256)


def _study_with_one_complete_trial() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"x": 1.0}, distributions=X, value=0.9))
    return study


def _waiting(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))


def test_a_long_training_trains_the_wider_point_its_time_holds():
    """`start_exploiting` hands each chosen configuration, its share of the time left and
    its exploration trial to `grow`, and enqueues what it returns, marked `grown`."""
    deadline = time.monotonic() + 100.0
    split = make_split(100.0, quickest_s=1.0, full_s=5.0, deadline=deadline)
    calls = []

    def grow(params, seconds, explored, trials):
        calls.append((params, seconds, explored.number))
        return {"x": 2.0}

    study = _study_with_one_complete_trial()
    assert start_exploiting(study, split, grow=grow) == [0]
    (waiting,) = _waiting(study)
    assert waiting.system_attrs["fixed_params"] == {"x": 2.0}
    facts = TrialRecord.read(waiting)
    assert facts.grown and facts.exploit and facts.promoted_from == 0
    ((params, seconds, explored),) = calls
    assert params == {"x": 1.0} and explored == 0
    assert 0 < seconds <= split.exploit_s + split.explore_s


def test_a_grown_training_and_its_explored_configuration_train_once():
    """A resumed study: an earlier search's grown training (x = 2) and the configuration
    it grew from (x = 1) both rank top; x = 1 grows into x = 2 again, so one is enough."""
    split = make_split(100.0, quickest_s=1.0, full_s=5.0, deadline=time.monotonic() + 100)
    split = dataclasses.replace(split, exploit_n=2)
    study = optuna.create_study(direction="maximize")
    for x, value in ((2.0, 0.95), (1.0, 0.94)):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions=X, value=value))
    grow = lambda params, *rest: {"x": 2.0} if params["x"] == 1.0 else None  # noqa: E731
    assert start_exploiting(study, split, grow=grow) == [0]
    assert [t.system_attrs["fixed_params"] for t in _waiting(study)] == [{"x": 2.0}]


def _grown_long_training() -> tuple[optuna.Study, optuna.Trial, Split]:
    """A study whose one complete trial (x = 1) trains long as x = 2, now running."""
    split = make_split(100.0, quickest_s=1.0, full_s=5.0, deadline=time.monotonic() + 100)
    study = _study_with_one_complete_trial()
    start_exploiting(study, split, grow=lambda *args: {"x": 2.0})
    trial = study.ask(X)
    assert trial.params == {"x": 2.0} and TrialRecord.read(trial).grown
    return study, trial, split


class _SlowFirstEpoch(keras.callbacks.Callback):
    """Makes the first epoch take a second more (a slow machine), before `GrownPace`."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            time.sleep(1.0)


def _fit_two_epochs(callback: keras.callbacks.Callback) -> keras.callbacks.History:
    """A small real model on digits, two epochs, the first a second slower, with `callback`."""
    x, y = digits_as("text")  # the 64 intensities, flat
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model.fit(
        x[:256].astype("float32"),
        y[:256],
        epochs=2,
        batch_size=64,
        verbose=0,
        callbacks=[_SlowFirstEpoch(), callback],
    )


def test_a_grown_training_too_slow_after_its_first_epoch_trains_as_explored():
    """Its first epoch (1-3.5 s) shows that 3-9 epochs fit its 10 s, under
    `GROW_MIN_EPOCHS`: it stops, pruned, and its configuration is enqueued as a long
    training of the same search, unwidened, before it ends (so no worker finds
    exploitation done meanwhile)."""
    study, trial, split = _grown_long_training()
    with pytest.raises(optuna.TrialPruned, match="grown too slow"):
        _fit_two_epochs(GrownPace(trial, until=time.monotonic() + 10.0, fit_overhead_s=0.0))
    (instead,) = _waiting(study)
    facts = TrialRecord.read(instead)
    assert instead.system_attrs["fixed_params"] == {"x": 1.0}
    assert facts.exploit and facts.exploit_run == split.run and facts.promoted_from == 0
    assert not facts.grown


def test_a_grown_training_whose_epochs_fit_trains_on():
    study, trial, _ = _grown_long_training()
    history = _fit_two_epochs(GrownPace(trial, until=time.monotonic() + 3600, fit_overhead_s=0.0))
    assert len(history.epoch) == 2 and not _waiting(study)


def test_a_grown_training_at_the_end_of_its_time_enqueues_nothing():
    """No epoch of anything fits after its first: nothing could train in its place (its
    schedule stops it, `ScheduleToTime`)."""
    study, trial, _ = _grown_long_training()
    history = _fit_two_epochs(GrownPace(trial, until=time.monotonic(), fit_overhead_s=0.0))
    assert len(history.epoch) == 2 and not _waiting(study)


def test_calibration_leaves_grown_trials_out():
    """A grown training's epoch was estimated from the wider reference, not the family's:
    its ratio says nothing about how the family's own estimates run."""
    from automl.engine._plan import Plan
    from automl.engine._timing import Speed

    plan = Plan({"cnn": Speed("cnn", 1.0, 0.01, 3.0, 1.0, 0.1, 9.0)}, 6, None, 0.0, None)

    def ran(seconds: float, estimate: float, **facts) -> optuna.trial.FrozenTrial:
        attrs = {"epochs": 4, "seconds": seconds, "estimated_epoch_s": estimate, **facts}
        return optuna.trial.create_trial(params={}, distributions={}, value=0.5, user_attrs=attrs)

    narrow = ran(1.0 + 4 * 12.0, 10.0)  # 1.2x slower than estimated
    grown = ran(1.0 + 4 * 30.0, 10.0, grown_from={"x": 1.0})  # 3x
    assert plan.calibration([narrow, grown], "cnn") == pytest.approx(1.2)


def test_trials_may_lengthen_a_grown_epoch_estimate_but_never_shorten_it(monkeypatch):
    """The wider reference was measured itself; the family's trials ran faster than
    their own estimates (0.5x), which says nothing about it. Shortening its epoch would
    build its schedule for more epochs than fit, to be squeezed once it runs."""
    import types

    import numpy as np

    from automl.engine._plan import Plan
    from automl.engine._timing import Speed

    monkeypatch.setattr(_plan, "forward_seconds", lambda model, rows: 0.1)
    narrow, wider = (Speed("cnn", 1.0, 0.01, 3.0, 1.0, 0.0, s) for s in (9.0, 27.0))
    plan = Plan({"cnn": narrow}, 6, None, 0.0, None, grown=wider)
    encoded = types.SimpleNamespace(stream=None, x_train=np.zeros((64, 3), "float32"))
    spec = types.SimpleNamespace(downsample=1, steps_per_epoch=lambda batch: 10)

    def ran(ratio: float) -> optuna.trial.FrozenTrial:
        attrs = {"epochs": 4, "seconds": 1.0 + 4 * 3.0 * ratio, "estimated_epoch_s": 3.0}
        return optuna.trial.create_trial(params={}, distributions={}, value=0.5, user_attrs=attrs)

    def estimate(speed: Speed, ratio: float) -> tuple[float, float]:
        return plan.epoch_estimate(speed, None, encoded, spec, 32, 32, [ran(ratio)])

    assert estimate(narrow, 0.5) == pytest.approx((3.1, 1.55))  # the family's own: calibrated
    assert estimate(wider, 0.5) == pytest.approx((3.1, 3.1))  # grown: never shorter
    assert estimate(wider, 2.0) == pytest.approx((3.1, 6.2))  # but may be longer


def test_another_configuration_s_wider_point_is_calibrated_on_its_own_trial(monkeypatch):
    """At 165 T a tutorial CNN's trial ran at 0.43 times its estimate and its wider model,
    estimated like the recipe's measured wider point, at 0.53 times: such a wider point
    is calibrated on its configuration's own exploration trial (either way), unless that
    ran at another resolution."""
    import types

    import numpy as np

    from automl.engine._plan import Plan
    from automl.engine._timing import Speed

    monkeypatch.setattr(_plan, "forward_seconds", lambda model, rows: 0.1)
    narrow, wider = (Speed("cnn", 1.0, 0.01, 3.0, 1.0, 0.0, s) for s in (9.0, 27.0))
    plan = Plan({"cnn": narrow}, 6, None, 0.0, None, grown=wider)
    encoded = types.SimpleNamespace(stream=None, x_train=np.zeros((64, 3), "float32"))
    spec = types.SimpleNamespace(downsample=1, steps_per_epoch=lambda batch: 10)

    def ran(ratio: float, downsample: int | None = None) -> optuna.trial.FrozenTrial:
        attrs = {"epochs": 4, "seconds": 1.0 + 4 * 3.0 * ratio, "estimated_epoch_s": 3.0}
        attrs["downsample"] = downsample
        return optuna.trial.create_trial(params={}, distributions={}, value=0.5, user_attrs=attrs)

    family = [ran(1.0)]  # the family's trials ran as estimated
    for ratio in (0.5, 2.0):
        own = plan.epoch_estimate(wider, None, encoded, spec, 32, 32, family, explored=ran(ratio))
        assert own == pytest.approx((3.1, 3.1 * ratio))
    elsewhere = ran(0.5, downsample=2)  # at another resolution: the grown rule again
    assert plan.epoch_estimate(
        wider, None, encoded, spec, 32, 32, family, explored=elsewhere
    ) == pytest.approx((3.1, 3.1))
    assert plan.own_calibration(ran(0.01)) == 0.2  # bounded like `calibration`


def test_the_grower_calibrates_another_configuration_s_wider_point_on_its_trial(
    digits_images, hour_plan, monkeypatch
):
    """A point other than the recipe grows where its own trial ran five times faster
    than estimated, and not where it did not; the plan's own wider point ignores it."""

    (data, spec), (space, plan) = digits_images, hour_plan
    grower = Grower(space, data, spec, plan, Objective())
    recipe = space.starting_points(spec)[0]
    other = {**recipe, "learning_rate": 0.2}
    monkeypatch.setattr(_plan, "forward_seconds", lambda model, rows: plan.grown.forward_s)
    epoch_s = plan.grown.epoch_s
    seconds = plan.grown.fit_overhead_s + 0.5 * GROW_LEAST_PLAN_EPOCHS * epoch_s

    def explored(ratio: float) -> optuna.trial.FrozenTrial:
        facts = {"epochs": 4, "estimated_epoch_s": 1.0, "downsample": None}
        facts["seconds"] = plan.speeds["cnn"].fit_overhead_s + 4 * ratio
        return optuna.trial.create_trial(params={}, distributions={}, value=0.5, user_attrs=facts)

    assert grower(other, seconds, explored(0.2), []) == cnn.grow(other, spec)
    assert grower(other, seconds, explored(1.0), []) is None
    assert grower(recipe, seconds, explored(0.2), []) is None  # measured: its own costs


def test_a_wider_point_outside_the_study_s_ranges_is_not_trained():
    """A space's own `grow` may step outside a distribution; Optuna would only warn."""
    study = _study_with_one_complete_trial()
    (explored,) = study.trials
    assert _grow._within({"x": 5.0}, explored) and not _grow._within({"x": 11.0}, explored)


def test_a_long_training_that_does_not_grow_trains_as_explored():
    split = make_split(100.0, quickest_s=1.0, full_s=5.0, deadline=time.monotonic() + 100)
    study = _study_with_one_complete_trial()
    start_exploiting(study, split, grow=lambda *args: None)
    (waiting,) = _waiting(study)
    assert waiting.system_attrs["fixed_params"] == {"x": 1.0}
    assert not TrialRecord.read(waiting).grown


def test_an_untried_starting_point_trains_long_as_its_wider_point():
    split = make_split(100.0, quickest_s=10.0, full_s=40.0, deadline=time.monotonic() + 100)
    assert not split.explores
    study = optuna.create_study(direction="maximize")
    start_exploiting(study, split, untried={"x": 1.0}, grow=lambda p, s, e, t: {"x": 3.0})
    (waiting,) = _waiting(study)
    facts = TrialRecord.read(waiting)
    assert waiting.system_attrs["fixed_params"] == {"x": 3.0}
    assert facts.grown and facts.starting_point and facts.exploit


def test_a_budget_that_holds_the_wider_long_training_keeps_its_time():
    """2,000 s of trials, a 40 s full training (4 keep 160 s), a wider long training of
    1,500 s: exploitation keeps the 1,500 s for one long training (two would not hold
    it twice); exploration gets the 500 s left. 4,000 s hold two."""
    split = make_split(2000.0, quickest_s=10.0, full_s=40.0, deadline=2000.0, grown_s=1500.0)
    assert split.grows and split.exploit_n == 1
    assert split.explore_s == pytest.approx(500.0) and split.exploit_s == pytest.approx(1500.0)
    assert "wider" in split.describe(6) and split.as_dict()["grows"] is True
    assert "each as many epochs as fit in its time" in split.describe(6)  # no epoch cap
    # Without a wider point: half each, and two long trainings.
    usual = make_split(2000.0, quickest_s=10.0, full_s=40.0, deadline=2000.0)
    assert not usual.grows and usual.explore_s == pytest.approx(1000.0) and usual.exploit_n == 2
    large = make_split(6000.0, quickest_s=10.0, full_s=40.0, deadline=6000.0, grown_s=1500.0)
    assert large.grows and large.exploit_n == 2


def test_a_budget_short_of_the_wanted_wider_training_keeps_all_of_it_for_that():
    """24 wider epochs (2,400 s) do not fit 2,000 s, but the least worth keeping
    (1,500 s) does: exploitation keeps the whole budget, as below 4 full trainings, and
    the first starting point trains long at once, wider (at 165 T on CIFAR-10 a fifth
    of the time explored never found a better configuration and cost most of what the
    wider model added)."""
    split = make_split(
        2000.0, quickest_s=10.0, full_s=40.0, deadline=2000.0, grown_s=2400.0, grown_least_s=1500.0
    )
    assert split.grows and split.exploit_n == 1
    assert not split.explores and split.exploit_s == pytest.approx(2000.0)
    described = split.describe(6)
    assert "since the budget holds no more than the long training, wider, of the first" in described
    assert "as many epochs as fit" in described
    too_short = make_split(
        2000.0, quickest_s=10.0, full_s=40.0, deadline=2000.0, grown_s=2400.0, grown_least_s=2001.0
    )
    assert not too_short.grows


def test_under_a_growing_split_a_long_training_is_limited_by_its_time_alone():
    """The time was kept for a wider training: one that does not grow after all (the
    calibrated estimate says too few epochs fit) still uses all of it."""
    grows = make_split(2000.0, quickest_s=10.0, full_s=40.0, deadline=2000.0, grown_s=1500.0)
    explored = TrialRecord(planned_epochs=6)  # trained all 6 of its epochs
    assert exploit_epoch_cap(explored, 6) == 24
    assert exploit_epoch_cap(explored, 6, grows) == UNCAPPED_EPOCHS


def test_a_budget_too_small_for_the_wider_long_training_splits_as_usual():
    """The budget does not hold the least wider long training worth keeping."""
    split = make_split(2000.0, quickest_s=10.0, full_s=40.0, deadline=2000.0, grown_s=2001.0)
    assert split == dataclasses.replace(
        make_split(2000.0, quickest_s=10.0, full_s=40.0, deadline=2000.0), run=split.run
    )


@pytest.fixture(scope="module")
def hour_plan(digits_images):
    """A real plan for an hour on digits as images, space `cnn` (this machine, measured)."""
    data, spec = digits_images
    space = resolve_space("cnn")
    deadline = time.monotonic() + 3600
    plan = make_plan(space, data, spec, Objective(), seed=0, deadline=deadline, timeout=3600)
    return space, plan


def test_the_plan_measures_the_wider_long_training_on_this_machine(
    digits_images, hour_plan, monkeypatch
):
    """An hour holds the recipe's wider long training: the plan measures its wider point
    like a reference and keeps its time; a budget of a few of the recipe's own epochs
    measures nothing more."""
    (data, spec), (space, plan) = digits_images, hour_plan
    assert plan.split.grows and plan.grown is not None, plan.describe()
    recipe = space.starting_points(spec)[0]
    assert plan.speed_of(recipe, grown=True) is plan.grown  # wider points: estimated like it
    assert plan.speed_of(recipe) is plan.speeds["cnn"]
    assert plan.grown.family == "cnn" and "its wider point" in plan.describe()
    assert plan.split.exploit_s >= GROW_PLAN_EPOCHS * plan.grown.epoch_s
    # A few of the reference's epochs: nowhere near the least to keep, so nothing is
    # timed. (Asked of a whole small plan, the answer hung on what its own setup cost
    # on the day: digits' epochs are so short that the budget barely held a trial.)
    reference = plan.speeds["cnn"]
    few = time.monotonic() + reference.trial_s(4)
    monkeypatch.setattr(_timing, "_measure", lambda *args: pytest.fail("timed: not screened"))
    assert measure_grown(space, data, spec, Objective(), {"cnn": reference}, 0, few) is None


def test_a_wider_point_estimated_too_slow_for_its_long_training_is_not_timed(
    digits_images, hour_plan, caplog
):
    """Where the time holds the least long training in the reference's epochs but not in
    the wider point's estimated ones (its eager forward pass, scaled like the reference),
    the wider point is not timed, and the log says why. Here the reference's epoch is
    made tiny and its scaling huge, so that only the estimate can stop the timing."""
    (data, spec), (space, plan) = digits_images, hour_plan
    reference = dataclasses.replace(plan.speeds["cnn"], epoch_s=1e-3, step_per_forward=1e6)
    deadline = time.monotonic() + 600  # holds many of the reference's (tiny) epochs
    with caplog.at_level("INFO", logger="automl"):
        grown = measure_grown(space, data, spec, Objective(), {"cnn": reference}, 0, deadline)
    assert grown is None
    assert f"cnn's wider point is not timed: {GROW_LEAST_PLAN_EPOCHS} of its" in caplog.text
    # The same reference as measured, with the hour: the wider point is timed.
    measured = measure_grown(
        space, data, spec, Objective(), dict(plan.speeds), 0, time.monotonic() + 3600
    )
    assert measured is not None and measured.family == "cnn"


def test_the_grower_widens_only_when_enough_wider_epochs_fit(digits_images, hour_plan):
    """The wider model's epoch is estimated like a trial's; the recipe grows when
    `GROW_MIN_EPOCHS` of them fit."""
    (data, spec), (space, plan) = digits_images, hour_plan
    grower = Grower(space, data, spec, plan, Objective())
    recipe = space.starting_points(spec)[0]
    speed = plan.speed_of(recipe)
    plenty = speed.fit_overhead_s + 50 * GROW_MIN_EPOCHS * speed.epoch_s * 4
    wider = grower(recipe, plenty, None, [])
    assert wider == cnn.grow(recipe, spec) and wider["filters_2"] > recipe["filters_2"]
    assert grower(recipe, speed.epoch_s * 2, None, []) is None  # a few epochs: no


def test_the_plans_own_wider_point_is_estimated_from_its_quiet_measure(
    digits_images, hour_plan, monkeypatch
):
    """Timed beside a worker's training, a forward pass can take twice as long: here every
    new timing reads 1000 times the truth. The plan's own wider point (the recipe's) is
    estimated from the forward pass the plan timed at the start, so it still grows; any
    other point is timed now, and refused."""

    (data, spec), (space, plan) = digits_images, hour_plan
    grower = Grower(space, data, spec, plan, Objective())
    recipe = space.starting_points(spec)[0]
    seconds = plan.grown.fit_overhead_s + 2 * GROW_LEAST_PLAN_EPOCHS * plan.grown.epoch_s
    monkeypatch.setattr(_plan, "forward_seconds", lambda model, rows: 1000 * plan.grown.forward_s)
    assert grower(recipe, seconds, None, []) == cnn.grow(recipe, spec)
    assert grower({**recipe, "learning_rate": 0.2}, seconds, None, []) is None
    # A value the space's config fixes is no trial param, but still the measured point's.
    fixed = dataclasses.replace(space, overrides={"stages": recipe["stages"]})
    explored = {k: v for k, v in recipe.items() if k != "stages"}
    assert Grower(fixed, data, spec, plan, Objective())(explored, seconds, None, []) is not None
    # A plan that did not time the wider point has no quiet measure of it: timed now.
    unmeasured = Grower(space, data, spec, dataclasses.replace(plan, grown=None), Objective())
    assert unmeasured(recipe, seconds, None, []) is None


def test_a_grown_long_training_is_estimated_on_what_the_grower_used(digits_images, hour_plan):
    """Planning its epochs, a grown long training of the recipe uses the plan's forward
    pass of its wider point; another configuration's, its own exploration trial."""
    from types import SimpleNamespace

    from automl.engine._objective import TrialObjective
    from automl.engine._trainer import build_model
    from automl.spaces import HyperParameters

    (_, spec), (space, plan) = digits_images, hour_plan
    objective = TrialObjective(SimpleNamespace(space=space, spec=spec, plan=plan))
    study = optuna.create_study()

    def grown_from(point: dict) -> tuple[int, tuple]:
        study.enqueue_trial(point)
        explored = study.ask()
        study.tell(explored, 0.5)
        attrs = TrialRecord.attrs(exploit=True, promoted_from=explored.number, grown_from=point)
        study.enqueue_trial(cnn.grow(point, spec), user_attrs=attrs)
        trial = study.ask()
        hp = HyperParameters(trial, space.overrides)
        build_model(space, hp, spec, Objective())  # a built model's values, as planned
        trials = study.get_trials(deepcopy=False)
        return explored.number, objective._grown_basis(trial, trials, hp, plan.grown)

    recipe = space.starting_points(spec)[0]
    assert grown_from(recipe)[1] == (plan.grown.forward_s, None)
    number, (forward_s, found) = grown_from({**recipe, "learning_rate": 0.2})
    assert forward_s is None and found is not None and found.number == number


def test_a_search_checks_the_pace_of_its_grown_trainings_only(hour_plan):
    """The trial's fit gets `GrownPace` when it is a grown long training with a window."""
    from types import SimpleNamespace

    from automl.engine._objective import TrialObjective
    from automl.spaces import HyperParameters

    _, plan = hour_plan
    context = SimpleNamespace(
        config=SimpleNamespace(patience=3), objective=Objective(), plan=plan, deadline=None,
        class_weight=None, callbacks=(),
    )  # fmt: skip
    study, grown, _ = _grown_long_training()
    other = study.ask(X)

    def paced(trial: optuna.Trial, until: float | None) -> bool:
        hp = HyperParameters(trial, {})
        fit = TrialObjective(context)._fit_plan(trial, hp, True, 5, until)
        return any(isinstance(c, GrownPace) for c in fit.callbacks)

    until = time.monotonic() + 100
    assert paced(grown, until) and not paced(grown, None) and not paced(other, until)


@pytest.mark.slow  # a real timed search of a minute or more
def test_a_search_trains_its_long_training_wider_when_its_time_holds_it(
    tmp_path, digits_images, monkeypatch
):
    """Digits as images, space `cnn`: exploration's best configuration trains long as
    its wider point (when it has one: the starting points all do). The threshold is
    lowered to 3 epochs, so that a minute's budget holds it on any machine here; the
    real threshold is checked above."""
    monkeypatch.setattr(_grow, "GROW_MIN_EPOCHS", 3)
    monkeypatch.setattr(_grow, "GROW_LEAST_PLAN_EPOCHS", 4)
    data, _ = digits_images
    budget = seconds_for_a_split(60, data, "cnn", 6)
    result = automl.search(
        "cnn",
        dataset=data,
        timeout=f"{budget}s",
        max_epochs=6,
        seed=0,
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri="none",
        out=tmp_path / "out",
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["plan"]["split"]["explore_s"] > 0, summary["plan"]["description"]
    longs = [t for t in result.study.trials if TrialRecord.read(t).exploit]
    assert longs, [t.user_attrs for t in result.study.trials]
    for long in longs:
        facts = TrialRecord.read(long)
        explored = result.study.trials[facts.promoted_from].params
        wider = cnn.grow(explored, None)  # None: the widest filters, or one stage
        assert long.params == (wider if facts.grown else explored), (long.params, explored)
        # A grown one whose first epoch ran too slow stops, and its configuration trains
        # in its place, if the time left holds it.
        too_slow = long.state.name == "PRUNED" and "grown too slow" in facts.reason
        in_place = not facts.grown and any(
            "grown too slow" in TrialRecord.read(t).reason
            and TrialRecord.read(t).promoted_from == facts.promoted_from
            for t in longs
        )
        assert long.state.name == "COMPLETE" or too_slow or in_place, facts.reason
    # The split keeps two full trainings or more for the long one: 3 wider epochs fit
    # on any machine here, so one that could grow did (else the log's grow: line says why).
    grown = [t for t in longs if TrialRecord.read(t).grown]
    growable = [
        t
        for t in longs
        if cnn.grow(result.study.trials[TrialRecord.read(t).promoted_from].params, None)
    ]
    assert grown or not growable, "a growable long training did not grow; see the log's grow: line"


def test_growing_is_off_for_searches_that_weigh_size_or_latency(digits_images):
    """A wider model costs more of what `--max-params`, `--max-latency-ms` or a cost
    objective weigh: such searches never grow."""
    from types import SimpleNamespace

    from automl.engine._limits import Limits
    from automl.engine._objective import TrialObjective

    data, spec = digits_images
    free = SimpleNamespace(
        limits=Limits(), objective=Objective(), space=resolve_space("cnn"), data=data,
        spec=spec, plan=None,
    )  # fmt: skip
    costs = Objective.for_task("classification", None, ("params",))
    cases = {"free": free, "limited": SimpleNamespace(**{**vars(free), "limits": Limits(1000)})}
    cases["costs"] = SimpleNamespace(**{**vars(free), "objective": costs})
    grows = {name: TrialObjective(context).grower() is not None for name, context in cases.items()}
    assert grows == {"free": True, "limited": False, "costs": False}


def test_no_other_family_is_measured_where_the_wider_long_training_takes_the_budget(
    digits_images, monkeypatch
):
    """600 s hold 9 full trainings of a 10 s-epoch reference (6 epochs), so without a
    wider point something is explored and every family of `auto` is measured; its wider
    point (20 s epochs), timed right after it, trains long for all 600 s, so nothing
    is, and measuring the others would only cost time (about 15 s at 165 T on
    CIFAR-10). Measuring itself is stubbed: only the order and the choice are tested."""
    from automl.engine._timing import Speed, measure_families, reference_points

    data, spec = digits_images
    space = resolve_space("auto")
    families = list(reference_points(space, spec))
    first = Speed(families[0], 1.0, 0.01, 3.0, 1.0, 0.1, 10.0, 256)
    wider = dataclasses.replace(first, forward_s=0.02, epoch_s=20.0)
    for grown, others in ((None, families[1:]), (wider, [])):
        timed: list[str] = []

        def measure(*args: object, timed: list[str] = timed, **kwargs: object) -> Speed:
            timed.append(str(args[4]))  # the family
            return dataclasses.replace(first, family=str(args[4]))

        def measure_wider(
            *args: object, g: Speed | None = grown, timed: list[str] = timed
        ) -> Speed | None:
            timed.append("wider")
            return g

        monkeypatch.setattr(_timing, "_measure", measure)
        monkeypatch.setattr(_timing, "measure_grown", measure_wider)
        deadline = time.monotonic() + 600.0
        measured = measure_families(space, data, spec, Objective(), 0, deadline)
        assert timed == [families[0], "wider", *others]
        assert measured.grown is grown and list(measured.speeds) == [families[0], *others]
        assert list(measured.unneeded) == ([] if others else families[1:])
