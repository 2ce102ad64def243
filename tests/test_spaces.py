"""automl.spaces: keras-tuner's hp API on Optuna, the building blocks, the built-in spaces."""

from __future__ import annotations

import keras
import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FixedTrial

from automl import UsageError
from automl.spaces import HyperParameters, ModelSpec, blocks, training
from search_spaces import SPACES, cnn, resolve_space
from tests.conftest import sqlite_url

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trial(seed: int = 0) -> optuna.Trial:
    """A real Optuna trial of a fresh in-memory study."""
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()


def _spec(shape=(4,), kind="vector", classes=3, n_train=96, max_epochs=4) -> ModelSpec:
    normalization = None
    if kind == "vector":
        normalization = (np.zeros(shape, "float32"), np.ones(shape, "float32"))
    return ModelSpec(
        input_shape=shape,
        kind=kind,
        task="classification",
        num_classes=classes,
        n_train=n_train,
        max_epochs=max_epochs,
        normalization=normalization,
    )


# -- the hp API -------------------------------------------------------------------------


def test_each_hp_kind_is_a_real_optuna_distribution():
    """Int/Float/Choice/Boolean become Int/Float/Categorical distributions with their
    ranges, steps and log scales, so samplers see the structure."""
    trial = _trial()
    hp = HyperParameters(trial)
    values = {
        "layers": hp.Int("layers", 1, 4),
        "units": hp.Int("units", 16, 512, sampling="log"),
        "filters": hp.Int("filters", 16, 64, step=16),
        "dropout": hp.Float("dropout", 0.0, 0.5),
        "lr": hp.Float("lr", 1e-4, 1e-1, sampling="log"),
        "momentum": hp.Float("momentum", 0.0, 0.9, step=0.1),
        "act": hp.Choice("act", ["relu", "tanh"]),
        "bn": hp.Boolean("bn"),
    }
    d = trial.distributions
    assert d["layers"] == IntDistribution(1, 4)
    assert d["units"] == IntDistribution(16, 512, log=True)
    assert d["filters"] == IntDistribution(16, 64, step=16)
    assert d["dropout"] == FloatDistribution(0.0, 0.5)
    assert d["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["momentum"] == FloatDistribution(0.0, 0.9, step=0.1)
    assert d["act"] == CategoricalDistribution(["relu", "tanh"])
    assert d["bn"] == CategoricalDistribution([False, True])
    assert trial.params == values == hp.values
    assert values["filters"] in (16, 32, 48, 64)


def test_fixed_is_recorded_but_never_sampled():
    """hp.Fixed returns its value and records it in hp.values, not as an Optuna param."""
    trial = _trial()
    hp = HyperParameters(trial)
    assert hp.Fixed("epochs_hint", 7) == 7
    assert "epochs_hint" not in trial.distributions
    assert hp.values["epochs_hint"] == 7 and "epochs_hint" in hp.fixed
    assert hp["epochs_hint"] == 7 and "epochs_hint" in hp


def test_repeated_name_returns_the_first_value():
    """Like keras-tuner, asking for a name twice returns the value already chosen."""
    hp = HyperParameters(_trial())
    first = hp.Int("units", 1, 100)
    assert hp.Int("units", 1, 100) == first
    assert hp.get("units") == first


def test_get_of_an_undefined_name_raises_key_error():
    """hp.get names the missing parameter."""
    with pytest.raises(KeyError, match="'nope' has not been defined"):
        HyperParameters(_trial()).get("nope")


def test_conditional_scope_leaves_inactive_params_unsampled():
    """Inside an inactive scope a param returns its default and Optuna never sees it."""
    trial = optuna.trial.FixedTrial({"optimizer": "adam", "lr": 0.01})
    hp = HyperParameters(trial)
    hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", "sgd"):
        momentum = hp.Float("momentum", 0.0, 0.99, default=0.5)
        nesterov = hp.Boolean("nesterov")
        depth = hp.Int("depth", 2, 5)  # no default: the minimum
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    assert (momentum, nesterov, depth) == (0.5, False, 2)
    assert set(trial.params) == {"optimizer", "lr"}  # FixedTrial would raise on a sample


def test_conditional_scope_samples_when_active_and_supports_parent_kwargs():
    """An active scope samples normally; parent_name/parent_values is the keyword form."""
    trial = _trial()
    hp = HyperParameters(trial)
    head = hp.Choice("head", ["dense"])
    with hp.conditional_scope("head", ["dense", "other"]):
        units = hp.Int("units", 8, 16)
    rate = hp.Float("rate", 0.1, 0.2, parent_name="head", parent_values="dense")
    skipped = hp.Int("gap_size", 1, 3, parent_name="head", parent_values=["gap"])
    assert head == "dense" and 8 <= units <= 16 and 0.1 <= rate <= 0.2
    assert skipped == 1
    assert set(trial.params) == {"head", "units", "rate"}
    assert hp.is_active()  # scopes are popped after use


def test_nested_scopes_must_all_hold():
    """A param is active only when every enclosing scope holds."""
    trial = FixedTrial({"a": "x", "b": "y"})
    hp = HyperParameters(trial)
    hp.Choice("a", ["x", "z"])
    hp.Choice("b", ["y", "w"])
    with hp.conditional_scope("a", "x"), hp.conditional_scope("b", "w"):
        assert hp.Int("inner", 3, 9) == 3
    assert "inner" not in trial.params


def test_fixed_trial_drives_the_hp_api():
    """optuna.trial.FixedTrial replays a given point of the space exactly."""
    point = {"layers": 3, "lr": 0.003, "act": "tanh", "bn": True}
    hp = HyperParameters(FixedTrial(point))
    got = {
        "layers": hp.Int("layers", 1, 4),
        "lr": hp.Float("lr", 1e-4, 1e-1, sampling="log"),
        "act": hp.Choice("act", ["relu", "tanh"]),
        "bn": hp.Boolean("bn"),
    }
    assert got == point


@pytest.mark.parametrize(
    ("define", "message"),
    [
        (
            lambda hp: hp.Int("units", 10, 5),
            r"hp 'units': min_value <= max_value must hold, "
            r"but got min_value=10, max_value=5",
        ),
        (lambda hp: hp.Float("rate", 0.5, 0.1), r"hp 'rate': min_value <= max_value must hold"),
        (lambda hp: hp.Float("rate", 0.0, float("inf")), r"hp 'rate': min_value <= max_value"),
        (lambda hp: hp.Choice("act", []), r"hp.Choice 'act': values must not be empty"),
        (
            lambda hp: hp.Float("lr", 0.0, 1.0, sampling="log"),
            r"hp 'lr': a log range must be > 0, but got min_value=0",
        ),
        (
            lambda hp: hp.Int("units", 0, 512, sampling="log"),
            r"hp 'units': a log range must be > 0",
        ),
        (
            lambda hp: hp.Float("lr", 0.1, 1.0, sampling="cubic"),
            r"hp 'lr': sampling must be 'linear' or 'log', but got sampling='cubic'",
        ),
        (lambda hp: hp.Int("units", 1, 9, step=0), r"hp.Int 'units': step must be >= 1"),
    ],
)
def test_invalid_hp_definitions_name_the_parameter(define, message):
    """Bad ranges are a UsageError naming the parameter, raised before Optuna sees them."""
    trial = _trial()
    with pytest.raises(UsageError, match=message):
        define(HyperParameters(trial))
    assert trial.params == {}


def test_keras_tuner_log_int_with_step_multiplier():
    """keras-tuner: Int(32, 512, step=2, sampling='log') takes one of 32, 64, 128, 256, 512."""
    hp = HyperParameters(_trial())
    assert hp.Int("units", 32, 512, step=2, sampling="log") in (32, 64, 128, 256, 512)


# -- blocks -----------------------------------------------------------------------------


def test_batch_size_choices_do_not_depend_on_the_data_size():
    """One distribution for every dataset size, so a study never meets two, and starting
    points (batch 64 and 128) fit small data too."""
    for n_train in (20, 1024, 50_000):
        trial = _trial()
        training.choose_batch_size(HyperParameters(trial), _spec(n_train=n_train))
        assert trial.distributions["batch_size"] == CategoricalDistribution([16, 32, 64, 128, 256])


def test_optimizer_conditionals_are_sampled_only_when_they_matter():
    """Nesterov SGD samples momentum and weight decay, AdamW weight decay, Adam neither."""
    sgd = FixedTrial(
        {
            "optimizer": "nesterov",
            "learning_rate": 0.01,
            "schedule": "cosine",
            "momentum": 0.9,
            "weight_decay": 5e-4,
        }
    )
    opt = training.choose_optimizer(HyperParameters(sgd), _spec(), batch_size=16)
    assert isinstance(opt, keras.optimizers.SGD) and opt.nesterov
    assert opt.momentum == pytest.approx(0.9) and opt.weight_decay == pytest.approx(5e-4)
    assert set(sgd.params) == {"optimizer", "learning_rate", "schedule", "momentum", "weight_decay"}

    adamw = FixedTrial(
        {"optimizer": "adamw", "learning_rate": 0.01, "schedule": "constant", "weight_decay": 1e-3}
    )
    opt = training.choose_optimizer(HyperParameters(adamw), _spec(), batch_size=16)
    assert isinstance(opt, keras.optimizers.AdamW)
    assert opt.weight_decay == pytest.approx(1e-3)

    trial = FixedTrial({"optimizer": "adam", "learning_rate": 0.01, "schedule": "warmup_cosine"})
    opt = training.choose_optimizer(HyperParameters(trial), _spec(), batch_size=16)
    assert type(opt) is keras.optimizers.Adam
    assert set(trial.params) == {"optimizer", "learning_rate", "schedule"}


def test_regularizer_strength_only_when_regularizing():
    """'none' samples no strength; 'l1l2' returns a Keras regularizer with it."""
    none = FixedTrial({"regularizer": "none"})
    assert blocks.choose_regularizer(HyperParameters(none)) is None
    both = FixedTrial({"regularizer": "l1l2", "regularizer_strength": 1e-4})
    reg = blocks.choose_regularizer(HyperParameters(both))
    assert isinstance(reg, keras.regularizers.L1L2)
    assert reg.l1 == pytest.approx(1e-4) and reg.l2 == pytest.approx(1e-4)


def test_spec_inputs_put_preprocessing_inside_the_model():
    """Images are rescaled to [0, 1] and vectors standardized in-model: models take raw data."""
    raw, x = _spec(shape=(2, 2, 1), kind="image").inputs()
    model = keras.Model(raw, x)
    pixels = np.full((1, 2, 2, 1), 255, dtype="uint8")
    np.testing.assert_allclose(model.predict(pixels, verbose=0), 1.0)

    spec = ModelSpec(
        (2,),
        "vector",
        "classification",
        2,
        10,
        1,
        normalization=(np.array([1.0, 10.0]), np.array([4.0, 0.0])),
    )
    raw, x = spec.inputs()
    out = keras.Model(raw, x).predict(np.array([[3.0, 10.0]], "float32"), verbose=0)
    np.testing.assert_allclose(out, [[1.0, 0.0]], atol=1e-4)  # zero variance is safe


# -- built-in spaces --------------------------------------------------------------------


def test_space_table_and_loading():
    """Each table row resolves to a build function and its starting points."""
    names = {"auto", "mlp", "tabular", "cnn", "resnet", "ngrams", "rnn", "transformer", "transfer"}
    assert set(SPACES) == names
    space = resolve_space("cnn")
    assert space.build is cnn.build and space.label == "cnn"
    points = space.starting_points(_cifar_spec())
    assert points == cnn.STARTING_POINTS and points[0] == cnn.FAST_RECIPE
    assert resolve_space("mlp").starting_points(_spec()) == []


def _layers(model: keras.Model, kind: type) -> list:
    return [layer for layer in model.layers if isinstance(layer, kind)]


def _cifar_spec(n_train: int = 45_000) -> ModelSpec:
    return _spec(shape=(32, 32, 3), kind="image", classes=10, n_train=n_train, max_epochs=12)


def test_cnn_baseline_is_the_tutorial_cnn():
    """BASELINE builds Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10 with Adam(1e-3)."""
    hp = HyperParameters(FixedTrial(cnn.BASELINE))
    model = cnn.build(hp, _cifar_spec())
    assert [c.filters for c in _layers(model, keras.layers.Conv2D)] == [32, 64, 64]
    assert all(c.kernel_size == (3, 3) for c in _layers(model, keras.layers.Conv2D))
    assert len(_layers(model, keras.layers.MaxPooling2D)) == 2
    assert [d.units for d in _layers(model, keras.layers.Dense)] == [64, 10]
    assert not _layers(model, keras.layers.BatchNormalization)
    assert not _layers(model, keras.layers.Dropout)
    assert model.count_params() == 122_570  # the TensorFlow tutorial's figure
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


@pytest.mark.parametrize("index", range(len(cnn.STARTING_POINTS)))
def test_each_starting_point_is_exactly_one_point_of_the_space(index):
    """A starting point names every param the space asks for at that point, and no other."""
    point = cnn.STARTING_POINTS[index]
    trial = FixedTrial(point)  # raises if the space asks for a param the point lacks
    cnn.build(HyperParameters(trial), _cifar_spec())
    assert trial.params == point


def test_cnn_average_pooling_builds():
    """pooling='avg' is one of the space's choices, so it must build."""
    point = {**cnn.BASELINE, "pooling": "avg"}
    model = cnn.build(HyperParameters(FixedTrial(point)), _cifar_spec())
    assert len(_layers(model, keras.layers.AveragePooling2D)) == 2


def test_cnn_starting_points_fit_a_small_image_set():
    """The starting points must build on any image set, including a small local copy."""
    for point in cnn.STARTING_POINTS:
        cnn.build(HyperParameters(FixedTrial(point)), _cifar_spec(n_train=240))


@pytest.mark.parametrize(
    ("space", "shape", "kind"),
    [
        ("mlp", (4,), "vector"),
        ("mlp", (8, 8, 1), "image"),
        ("cnn", (32, 32, 3), "image"),
        ("cnn", (28, 28, 1), "image"),
    ],
)
def test_random_points_build_compiled_models(space, shape, kind):
    """Random points of each space build compiled models with raw input and a softmax head."""
    build = resolve_space(space).build
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    spec = _spec(shape=shape, kind=kind, classes=10, n_train=2000)
    for _ in range(4):
        trial = study.ask()
        model = build(HyperParameters(trial), spec)
        assert model.compiled
        assert tuple(model.inputs[0].shape[1:]) == shape
        assert model.outputs[0].shape[-1] == 10
        assert model.layers[-1].activation.__name__ == "softmax"
        study.tell(trial, 0.0)
        keras.utils.clear_session()


@pytest.mark.slow  # the CIFAR-10 search it reads (60-80 s) only the slow checks share
def test_starting_points_are_the_first_trials_of_a_new_image_study(cifar_search):
    """A new cifar10 study (default space: auto) runs the fast recipe as trial 0 and the
    tutorial CNN as trial 1, marked as starting points, and both complete. (With one
    epoch nothing can be pruned: test_a_starting_point_is_never_pruned checks that.)"""
    first, second = cifar_search.result.study.trials[:2]

    def in_auto(point: dict) -> dict:
        return {"family": "cnn", **{f"cnn.{k}": v for k, v in point.items()}}

    assert first.params == in_auto(cnn.FAST_RECIPE)
    assert second.params == in_auto(cnn.BASELINE)
    for trial in (first, second):
        assert trial.user_attrs.get("starting_point") is True
        assert trial.state.name == "COMPLETE", trial.user_attrs.get("reason")


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_a_starting_point_is_never_pruned(tmp_path):
    """The same hopeless point (SGD at the lowest learning rate) enqueued twice after three
    trials, with the median pruner: as a plain trial it is pruned, marked as a starting
    point it reports to the pruner but trains to its last epoch."""
    import automl
    from automl.record import TrialRecord

    options = {
        "space": "mlp",
        "study": "protect",
        "max_epochs": 4,
        "pruner": "median",
        "storage": sqlite_url(tmp_path / "automl.db"),
        "tracking_uri": None,
        "out": tmp_path / "out",
    }
    study = automl.search(dataset="digits", trials=3, **options).study
    hopeless = {"optimizer": "sgd", "learning_rate": 1e-4, "schedule": "constant"}
    study.enqueue_trial(hopeless)
    study.enqueue_trial(hopeless, user_attrs=TrialRecord.attrs(starting_point=True))
    trials = automl.search(dataset="digits", trials=5, **options).study.trials
    plain, protected = trials[3], trials[4]
    for trial in (plain, protected):
        assert {k: trial.params[k] for k in hopeless} == hopeless
    assert plain.state.name == "PRUNED", [t.intermediate_values for t in trials]
    assert protected.state.name == "COMPLETE"
    assert len(protected.intermediate_values) == 4  # it reported every epoch
    # It really was worse than the median the plain one was pruned for.
    step = max(plain.intermediate_values)
    median = float(np.median([t.intermediate_values[step] for t in trials[:3]]))
    assert protected.intermediate_values[step] < median


def test_auto_offers_transfer_only_with_cached_backbones(monkeypatch, tmp_path):
    """auto adds `transfer` when some ImageNet file is cached and narrows its backbone to
    the cached ones, so it never samples a backbone it cannot load."""
    from search_spaces import auto

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache

    spec = _cifar_spec()
    monkeypatch.setattr(auto, "_cached_backbones", lambda: [])
    assert auto.families(spec) == ["cnn", "resnet", "transformer"]
    monkeypatch.setattr(auto, "_cached_backbones", lambda: ["mobilenet_v3_small"])
    assert auto.families(spec)[-1] == "transfer"
    trial = _trial()
    hp = HyperParameters(trial, {"family": "transfer"})
    with pytest.raises(UsageError, match="mobilenet_v3_small"):  # no file in this cache
        auto.build(hp, spec)
    assert trial.distributions["transfer.backbone"] == CategoricalDistribution(
        ["mobilenet_v3_small"]
    )
    assert all(p["family"] != "transfer" for p in auto.starting_points(spec))  # v2 not cached


# -- space configs and references ---------------------------------------------------------

CONFIG_ERRORS = [
    ("noname.toml", "[params]\nlayers = 2\n", "must say which space it narrows"),
    ("extra.toml", 'space = "mlp"\nextra = 1\n', r"unknown key\(s\) extra"),
    ("flat.yaml", "space: mlp\nparams: [1, 2]\n", "'params' must be a table"),
    ("empty.toml", 'space = "mlp"\n[params]\nlayers = []\n', "params.layers must be a value"),
    ("base.toml", 'space = "nope"\n', "unknown space 'nope'"),
]


@pytest.mark.parametrize(
    ("name", "text", "match"), CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS]
)
def test_space_config_mistakes_are_usage_errors(tmp_path, name, text, match):
    """Each malformed config names what is wrong, before any model is built."""
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=match):
        resolve_space(str(tmp_path / name))


def test_range_given_for_a_choice_is_refused_at_the_first_build(tmp_path):
    """{min, max} on a categorical parameter is refused when the space asks for it."""
    from automl.engine._space_check import check_space

    (tmp_path / "c.toml").write_text('space = "mlp"\n[params]\nactivation = {min = 1}\n')
    with pytest.raises(UsageError, match="gives 'activation' a min/max range"):
        check_space(resolve_space(str(tmp_path / "c.toml")), _spec(), seed=0)


def test_a_space_file_that_fails_to_import_is_a_usage_error(tmp_path):
    (tmp_path / "bad.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(UsageError, match="cannot import space file .*ModuleNotFoundError"):
        resolve_space(f"{tmp_path / 'bad.py'}:build")


def test_a_hypermodel_class_that_needs_arguments_is_a_usage_error():
    import keras_tuner

    class Needs(keras_tuner.HyperModel):
        def __init__(self, classes):
            super().__init__()

    with pytest.raises(UsageError, match="HyperModel Needs needs constructor arguments"):
        resolve_space(Needs)


def test_config_drops_starting_points_it_contradicts(tmp_path):
    """Fixing cnn's optimizer to AdamW keeps the modern CNN point and drops the tutorial
    CNN (Adam) and the fast recipe (Nesterov SGD), as the README says."""
    (tmp_path / "w.toml").write_text('space = "cnn"\n[params]\noptimizer = "adamw"\n')
    assert resolve_space(str(tmp_path / "w.toml")).starting_points(_cifar_spec()) == [cnn.MODERN]


def test_auto_configs_name_prefixed_parameters(tmp_path):
    """For auto, `mlp.layers` narrows mlp; the bare `layers` names nothing auto asks for."""
    from automl.engine._space_check import check_space

    (tmp_path / "ok.toml").write_text('space = "auto"\n[params]\n"mlp.layers" = 2\n')
    check_space(resolve_space(str(tmp_path / "ok.toml")), _spec(), seed=0)
    (tmp_path / "bare.toml").write_text('space = "auto"\n[params]\nlayers = 2\n')
    with pytest.raises(UsageError, match="names 'layers', which space .* never asks for"):
        check_space(resolve_space(str(tmp_path / "bare.toml")), _spec(), seed=0)
