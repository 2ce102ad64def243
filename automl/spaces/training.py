"""Training helpers spaces share: batch size, optimizer, schedule, label smoothing, compile.

Conditional parameters are sampled only where they act: `momentum` only for the
momentum and Nesterov SGD variants, `weight_decay` only for optimizers that decay
weights decoupled from the gradient, the learning-rate `schedule` decays over the
trial's epoch budget. `weight_averaging` (offered where a space asks for it) keeps an
exponential moving average of the weights and puts it in the model at every epoch's end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from automl.spaces._hp import HyperParameters
    from automl.spaces._spec import ModelSpec

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "nadam", "rmsprop", "adagrad", "lion")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "reduce_on_plateau")
BATCH_SIZES = (16, 32, 64, 128, 256)
_DECOUPLED_DECAY = ("sgd", "momentum", "nesterov", "adamw", "lion")
# Keras' names for batch norm's and layer norm's scale and offset, and for biases: the
# variables `decay_kernels_only` leaves undecayed. `re.search` gets "beta" on most
# backends and TensorFlow's "batch_normalization/beta:0", so the last part is matched.
NOT_DECAYED = r"(^|/)(gamma|beta|bias)(:\d+)?$"


def choose_batch_size(
    hp: HyperParameters, spec: ModelSpec | None = None, choices: tuple[int, ...] = BATCH_SIZES
) -> int:
    """Sample `batch_size` and hand it to the trainer's `fit`.

    The choices never depend on the data size: Optuna needs one distribution per
    parameter across a study, and starting points must fit every dataset.
    """
    batch_size = int(hp.Choice("batch_size", list(choices)))
    hp.fit_kwargs["batch_size"] = batch_size
    return batch_size


def choose_optimizer(
    hp: HyperParameters,
    spec: ModelSpec | None = None,
    *,
    batch_size: int | None = None,
    choices: tuple[str, ...] = OPTIMIZERS,
    learning_rate: tuple[float, float] = (1e-4, 1e-1),
    learning_rate_name: str = "learning_rate",
    learning_rates: Mapping[str, tuple[float, float]] | None = None,
    averaging: bool = False,
    kernel_decay: bool = False,
) -> keras.optimizers.Optimizer:
    """Sample `optimizer`, the learning rate (log scale), `schedule` and their conditionals.

    Args:
        hp: The trial's hyperparameters.
        spec: Data facts; schedules that decay over the run need it (without it only
            "constant" and "reduce_on_plateau" are offered).
        batch_size: The trial's batch size, to count steps (default: the sampled one).
        choices: Optimizers to choose among (`OPTIMIZERS` names).
        learning_rate: (low, high) of the log-scale learning-rate range.
        learning_rate_name: Parameter name of the learning rate.
        learning_rates: Optimizer name -> its own (low, high) range, for optimizers
            whose useful rates lie elsewhere (SGD with batch norm and large batches
            trains at 0.1-1, where Adam diverges); one parameter either way.
        averaging: Also sample `weight_averaging` ("none" or "ema", see
            `weight_averaging`).
        kernel_decay: Also sample `decay_kernels_only` where weights decay: True
            decays the kernels alone (Keras decays every trainable variable,
            normalization's scale and offset included; the fast recipe scored better
            without decaying them, `benchmarks/probe_ingredients.py`).

    Returns:
        A Keras optimizer; with "reduce_on_plateau" a `ReduceLROnPlateau` callback is
        added to `hp.callbacks`.
    """
    import keras

    name = hp.Choice("optimizer", list(choices))
    low, high = (learning_rates or {}).get(name, learning_rate)
    lr = hp.Float(learning_rate_name, low, high, sampling="log")
    schedules = SCHEDULES if spec is not None else ("constant", "reduce_on_plateau")
    schedule = hp.Choice("schedule", list(schedules))
    rate: Any = lr
    if schedule in ("cosine", "warmup_cosine") and spec is not None:
        batch_size = batch_size or int(hp.fit_kwargs.get("batch_size", 32))
        total = spec.steps_per_epoch(batch_size) * spec.max_epochs
        warmup = max(1, total // 10) if schedule == "warmup_cosine" else 0
        rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else lr,
            decay_steps=max(1, total - warmup),
            alpha=0.01,
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
        )
    elif schedule == "reduce_on_plateau":
        hp.callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.3, patience=2, min_lr=lr / 1000
            )
        )
    decay = None
    if name in _DECOUPLED_DECAY:
        decay = hp.Float("weight_decay", 1e-6, 1e-1, sampling="log")
    options: dict[str, Any] = {"weight_decay": decay}
    if averaging and hp.Choice("weight_averaging", ["none", "ema"]) == "ema":
        batch_size = batch_size or int(hp.fit_kwargs.get("batch_size", 32))
        options.update(weight_averaging(spec, batch_size))
    if name in ("momentum", "nesterov"):
        options["momentum"] = hp.Float("momentum", 0.5, 0.99)
        options["nesterov"] = name == "nesterov"
    optimizer = {
        "sgd": keras.optimizers.SGD,
        "momentum": keras.optimizers.SGD,
        "nesterov": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "nadam": keras.optimizers.Nadam,
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
        "lion": keras.optimizers.Lion,
    }[name](rate, **options)
    if kernel_decay and decay is not None and hp.Boolean("decay_kernels_only"):
        optimizer.exclude_from_weight_decay(var_names=[NOT_DECAYED])
    return optimizer


def weight_averaging(spec: ModelSpec | None, batch_size: int) -> dict[str, Any]:
    """Optimizer options for an exponential moving average of the weights (Keras' EMA).

    The average replaces the model's weights at the end of every epoch (the last step
    of each epoch, `spec.steps_per_epoch`): validation, early stopping and the saved
    model all see the averaged weights, and training goes on from them, much like
    Lookahead with one epoch as its period. Without a spec, only at the end of `fit`.
    """
    every = spec.steps_per_epoch(batch_size) if spec is not None else None
    return {"use_ema": True, "ema_momentum": 0.99, "ema_overwrite_frequency": every}


def choose_label_smoothing(hp: HyperParameters, spec: ModelSpec, high: float = 0.2) -> float:
    """Sample `label_smoothing` in [0, high] for classification; 0 for regression."""
    if spec.task != "classification":
        return 0.0
    return hp.Float("label_smoothing", 0.0, high)


def task_loss(spec: ModelSpec, label_smoothing: float = 0.0) -> Any:
    """The loss for `spec.task`: sparse cross-entropy (optionally smoothed) or MSE."""
    if spec.task == "regression":
        return "mean_squared_error"
    if label_smoothing > 0:
        from automl.spaces.losses import SparseCategoricalCrossentropyWithSmoothing

        return SparseCategoricalCrossentropyWithSmoothing(label_smoothing)
    return "sparse_categorical_crossentropy"


def task_metrics(spec: ModelSpec, only: str | None = None) -> list[Any]:
    """Metrics logged every epoch: accuracy (RMSE for regression) and `spec.metric`.

    `spec.metric` is what trials are scored on (`--metric`: AUC one-vs-rest macro, macro
    F1; MSE, MAE, R²). Other metrics are left out of the training graph: AUC and F1 add
    ~15 % to a small model's step time and ~0.7 s of tracing per trial. The best model's
    test metrics cover them all. `only` keeps just that metric (none for "loss").
    """

    names = [only] if only else ["rmse" if spec.task == "regression" else "accuracy"]
    if not only and spec.metric and spec.metric not in names:
        names.append(spec.metric)
    return [_metric(name, spec) for name in names if name != "loss"]


def _metric(name: str, spec: ModelSpec) -> Any:
    """One Keras metric, named as `--metric` names it."""
    import keras

    if name == "accuracy":
        return "accuracy"
    if name in ("auc", "f1"):
        from automl.spaces.metrics import SparseAUC, SparseF1

        return (SparseAUC if name == "auc" else SparseF1)(spec.num_classes)
    regression = {
        "mse": keras.metrics.MeanSquaredError,
        "rmse": keras.metrics.RootMeanSquaredError,
        "mae": keras.metrics.MeanAbsoluteError,
        "r2": keras.metrics.R2Score,
    }
    return regression[name](name=name)


def compile_for_task(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | str,
    spec: ModelSpec,
    *,
    label_smoothing: float = 0.0,
    only: str | None = None,
) -> keras.Model:
    """Compile with the loss and metrics of `spec.task` (`only`: just that metric)."""
    model.compile(
        optimizer=optimizer,
        loss=task_loss(spec, label_smoothing),
        metrics=task_metrics(spec, only),
    )
    return model


def choose_training(
    hp: HyperParameters, spec: ModelSpec, **optimizer_options: Any
) -> Callable[[keras.Model], keras.Model]:
    """Sample label smoothing, batch size and the optimizer with its schedule.

    Args:
        hp: The trial's hyperparameters.
        spec: Data facts.
        **optimizer_options: Passed to `choose_optimizer` (choices, learning-rate range
            and name).

    Returns:
        The function that compiles a built model with what was sampled.
    """
    smoothing = choose_label_smoothing(hp, spec)
    batch_size = choose_batch_size(hp, spec)
    optimizer = choose_optimizer(hp, spec, batch_size=batch_size, **optimizer_options)
    return lambda model: compile_for_task(model, optimizer, spec, label_smoothing=smoothing)


@contextlib.contextmanager
def mixed_precision_on_gpu() -> Iterator[bool]:
    """Build the layers created inside under `mixed_bfloat16` when Keras sees a GPU.

    bfloat16 has float32's range, so no loss scaling is needed; build the output head
    after the block, so the softmax stays in float32. On CPUs (where bfloat16 math is
    slower) it changes nothing. Keras' device listing is backend-neutral, so no
    TensorFlow call is needed. Yields whether mixed precision is on; the previous global
    policy is restored on exit.
    """
    import keras

    if not gpu_devices():
        yield False
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield True
    finally:
        keras.config.set_dtype_policy(previous)


def gpu_devices() -> list[str]:
    """The GPUs Keras sees (`"gpu:0"`, ...), from its backend-neutral device listing."""
    import keras

    return [d for d in keras.distribution.list_devices() if d.lower().startswith("gpu")]


def points_for(
    spec: ModelSpec, kinds: tuple[str, ...], points: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A space's starting points for `spec`: none for a data kind outside `kinds`, and
    without `label_smoothing` (a classification option) for regression."""
    if spec.kind not in kinds:
        return []
    drop = set() if spec.task == "classification" else {"label_smoothing"}
    return [{k: v for k, v in point.items() if k not in drop} for point in points]
