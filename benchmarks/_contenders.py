"""The searchers `benchmarks.quality` compares, each run the way its documentation shows.

Every contender searches the same space (the built-in `build(hp, spec)` of `mlp` or
`cnn`) on the same split for the same wall-clock budget, with the same epoch cap and
early stopping, and a `Deadline` callback that stops training when the budget runs
out. keras-tuner and AutoKeras have no time budget of their own: at the deadline the
callback also caps their oracle's `max_trials`, which is how keras-tuner ends a search.
Each contender returns the epoch-by-epoch validation accuracy with its time since the
start (the "timeline"), its best validation accuracy and its best model's test accuracy.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from automl.data import Dataset
    from automl.spaces import ModelSpec

# A tutorial-style MLP for vector data (two ReLU layers of 64, Adam 1e-3, batch 32): the
# reference the searches must reach on digits and the tabular set.
TUTORIAL_MLP = {
    "layers": 2,
    "units": 64,
    "taper": 1.0,
    "activation": "relu",
    "initializer": "glorot_uniform",
    "regularizer": "none",
    "normalization": "none",
    "dropout": 0.0,
    "label_smoothing": 0.0,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
}


class Clock:
    """Time since the search started, and the validation accuracy of every epoch."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + budget_s
        self.timeline: list[tuple[float, float]] = []

    def epoch(self, logs: dict[str, float] | None) -> None:
        """Record one finished epoch's validation accuracy."""
        if logs and "val_accuracy" in logs:
            self.timeline.append((round(time.monotonic() - self.start, 2), logs["val_accuracy"]))

    def callbacks(self, on_deadline: Callable[[], None] | None = None) -> list[Any]:
        """Keras callbacks: the deadline (which also calls `on_deadline`) and the timeline."""
        import keras

        from automl.engine._callbacks import Deadline

        clock = self

        class _Stop(Deadline):
            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                super().on_train_batch_end(batch, logs)
                if self.hit and on_deadline is not None:
                    on_deadline()

        class _Timeline(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                clock.epoch(logs)

        return [_Stop(self.deadline), _Timeline()]


def early_stopping(patience: int) -> keras.callbacks.Callback:
    """The engine's early stopping: best validation accuracy, best weights restored."""
    import keras

    return keras.callbacks.EarlyStopping(
        "val_accuracy", mode="max", patience=patience, restore_best_weights=True
    )


def fit_arguments(data: Dataset, epochs: int, callbacks: list[Any]) -> dict[str, Any]:
    """What every contender hands to `fit` (or `search`): the training and validation
    splits, the epoch cap and its callbacks."""
    return {
        "x": data.x_train,
        "y": data.y_train,
        "validation_data": (data.x_val, data.y_val),
        "epochs": epochs,
        "verbose": 0,
        "callbacks": callbacks,
    }


def stop_oracle(owner: Any) -> Callable[[], None]:
    """A deadline action that ends a keras-tuner search: its oracle stops once it holds
    `max_trials` (`owner.oracle` is looked up when the deadline hits)."""

    def stop() -> None:
        owner.oracle.max_trials = 1

    return stop


def test_accuracy(model: keras.Model, data: Dataset) -> float:
    """Accuracy of `model` on the test split."""
    import numpy as np

    probabilities = model.predict(data.x_test, batch_size=256, verbose=0)
    if probabilities.shape[-1] == 1:
        predicted = (probabilities[:, 0] > 0.5).astype(int)
    else:
        predicted = probabilities.argmax(axis=-1)
    return float(np.mean(predicted == np.asarray(data.y_test).reshape(-1)))


def run_reference(
    data: Dataset, spec: ModelSpec, build: Callable, params: dict[str, Any], epochs: int, seed: int
) -> dict[str, Any]:
    """Train the tutorial model alone for its `epochs`, keeping its best epoch."""
    import keras
    import optuna

    from automl.spaces import HyperParameters

    keras.utils.set_random_seed(seed)
    clock = Clock(float("inf"))
    hp = HyperParameters(optuna.trial.FixedTrial(params))
    model = build(hp, spec)
    callbacks = [*clock.callbacks(), early_stopping(epochs), *hp.callbacks]
    model.fit(**fit_arguments(data, epochs, callbacks), **hp.fit_kwargs)
    return _outcome(clock, model, data, trials=1)


def run_automl(
    data: Dataset, spec: ModelSpec, space: str, budget_s: float, seed: int, patience: int
) -> dict[str, Any]:
    """`automl.search` with its default sampler (TPE) and pruner (Hyperband), MLflow on."""
    import mlflow  # noqa: F401 - imported before the clock, as the others' libraries are
    import optuna  # noqa: F401

    import automl
    from automl.engine import SearchObserver

    clock: Clock

    class _Timeline(SearchObserver):
        def epoch_ended(self, number: int, epoch: int, max_epochs: int, logs: dict) -> None:
            clock.epoch(logs)

    with tempfile.TemporaryDirectory() as work:
        clock = Clock(budget_s)
        result = automl.search(
            space,
            dataset=data,
            timeout=budget_s,
            max_epochs=spec.max_epochs,
            patience=patience,
            seed=seed,
            trials=None,
            storage=f"sqlite:///{work}/automl.db",
            tracking_uri=f"sqlite:///{work}/mlflow.db",
            out=f"{work}/out",
            observer=_Timeline(),
        )
        wall = time.monotonic() - clock.start
        finished = [t for t in result.study.trials if t.state.is_finished()]
        return {
            **_summary(clock, wall),
            # Scored as the others are, on the model automl exported.
            "test_accuracy": None
            if result.best_model is None
            else test_accuracy(result.best_model, data),
            "trials": len(finished),
        }


def run_optuna_loop(
    data: Dataset, spec: ModelSpec, build: Callable, budget_s: float, seed: int, patience: int
) -> dict[str, Any]:
    """The loop a user writes by hand: TPE, `study.optimize(timeout=...)`, no pruning."""
    import optuna

    from automl.spaces import HyperParameters

    clock = Clock(budget_s)
    best: dict[str, Any] = {"value": -1.0, "model": None}

    def objective(trial: optuna.Trial) -> float:
        hp = HyperParameters(trial)
        model = build(hp, spec)
        callbacks = [*clock.callbacks(), early_stopping(patience), *hp.callbacks]
        history = model.fit(**fit_arguments(data, spec.max_epochs, callbacks), **hp.fit_kwargs)
        value = max(history.history.get("val_accuracy", [0.0]))
        if value > best["value"]:
            best.update(value=value, model=model)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=budget_s, catch=(Exception,))
    return _outcome(clock, best["model"], data, trials=len(study.trials))


def run_keras_tuner(
    data: Dataset,
    spec: ModelSpec,
    build: Callable,
    tuner_name: str,
    budget_s: float,
    seed: int,
    patience: int,
    score: Callable[[keras.Model], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """keras-tuner's `Hyperband`, `RandomSearch` or `BayesianOptimization` on the space;
    `score`, when given, adds its figures for the best model (e.g. with test-time
    augmentation) to the outcome, after the wall time is taken."""
    import keras_tuner as kt

    from benchmarks._kt_space import SpaceHyperModel

    clock = Clock(budget_s)
    with tempfile.TemporaryDirectory() as work:
        common = {
            "objective": kt.Objective("val_accuracy", "max"),
            "seed": seed,
            "directory": work,
            "project_name": tuner_name,
            "overwrite": True,
        }
        hypermodel = SpaceHyperModel(build, spec)
        if tuner_name == "Hyperband":
            tuner = kt.Hyperband(
                hypermodel, max_epochs=spec.max_epochs, hyperband_iterations=1000, **common
            )
        else:
            tuner = getattr(kt, tuner_name)(hypermodel, max_trials=100_000, **common)
        callbacks = [*clock.callbacks(stop_oracle(tuner)), early_stopping(patience)]
        tuner.search(**fit_arguments(data, spec.max_epochs, callbacks))
        model = tuner.get_best_models(1)[0]
        outcome = _outcome(clock, model, data, trials=len(tuner.oracle.trials))
        return outcome if score is None else {**outcome, **score(model)}


def run_autokeras(
    data: Dataset, spec: ModelSpec, budget_s: float, seed: int, patience: int
) -> dict[str, Any]:
    """AutoKeras's `ImageClassifier` (images) or `StructuredDataClassifier` (vectors)."""
    import autokeras as ak

    _patch_autokeras_shapes()
    with tempfile.TemporaryDirectory() as work:
        kind = ak.ImageClassifier if data.kind == "image" else ak.StructuredDataClassifier
        searcher = kind(
            max_trials=100_000, directory=work, overwrite=True, seed=seed, objective="val_accuracy"
        )
        clock = Clock(budget_s)
        callbacks = [*clock.callbacks(stop_oracle(searcher.tuner)), early_stopping(patience)]
        searcher.fit(**fit_arguments(data, spec.max_epochs, callbacks))
        model = searcher.export_model()
        return _outcome(clock, model, data, trials=len(searcher.tuner.oracle.trials))


def _patch_autokeras_shapes() -> None:
    """AutoKeras 3.0.0 hands NumPy integers to `Dense(units)`, which Keras 3.15 refuses
    ("expected a positive integer. Received: units=10"): make its I/O shapes plain ints."""
    from autokeras.graph import Graph

    original = Graph.set_io_shapes
    if getattr(original, "patched", False):
        return

    def set_io_shapes(self: Graph, shapes: Any) -> None:
        import tree

        original(self, shapes)
        for node in [*self.inputs, *(n.in_blocks[0] for n in self.outputs)]:
            if node.shape is not None:
                node.shape = tuple(None if d is None else int(d) for d in tree.flatten(node.shape))

    set_io_shapes.patched = True  # type: ignore[attr-defined]
    Graph.set_io_shapes = set_io_shapes


def run_yardstick(data: Dataset) -> dict[str, Any]:
    """scikit-learn's HistGradientBoosting with its defaults on the same split: the
    yardstick a search reports beside its own score (`automl.baseline`)."""
    from automl.baseline import fit_baseline

    fitted = fit_baseline(data, "accuracy")
    if fitted is None:
        raise ValueError(f"no scikit-learn yardstick for {data.kind} data")
    return {
        "best_val_accuracy": fitted["val"]["accuracy"],
        "epochs": 0,
        "wall_s": round(fitted["seconds"], 1),
        "timeline": [],
        "test_accuracy": fitted["test"]["accuracy"],
        "trials": 1,
    }


def _summary(clock: Clock, wall: float) -> dict[str, Any]:
    values = [value for _, value in clock.timeline]
    return {
        "best_val_accuracy": max(values, default=None),
        "epochs": len(values),
        "wall_s": round(wall, 1),
        "timeline": clock.timeline,
    }


def _outcome(clock: Clock, model: keras.Model | None, data: Dataset, trials: int) -> dict:
    wall = time.monotonic() - clock.start
    return {
        **_summary(clock, wall),
        "test_accuracy": None if model is None else test_accuracy(model, data),
        "trials": trials,
    }
