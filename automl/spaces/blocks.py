"""Reusable hp helpers that built-in spaces share and users may import.

Each `choose_*` function samples its own parameters (conditional ones only when they
matter, e.g. momentum only for SGD) and returns a ready Keras object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from automl.spaces._hp import HyperParameters
    from automl.spaces._spec import ModelSpec

ACTIVATIONS = ("relu", "gelu", "swish", "tanh", "elu", "selu", "leaky_relu", "mish")
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
)
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine")


def choose_activation(hp: HyperParameters, choices: tuple[str, ...] = ACTIVATIONS) -> str:
    """Sample `activation`; returns a name `keras.layers.Activation` accepts."""
    return hp.Choice("activation", list(choices))


def choose_initializer(hp: HyperParameters, choices: tuple[str, ...] = INITIALIZERS) -> str:
    """Sample `initializer`; returns a Keras initializer name."""
    return hp.Choice("initializer", list(choices))


def choose_regularizer(hp: HyperParameters) -> keras.regularizers.Regularizer | None:
    """Sample `regularizer` (none/l1/l2/l1l2) and, when used, its log-scale strength."""
    import keras

    kind = hp.Choice("regularizer", ["none", "l2", "l1", "l1l2"])
    if kind == "none":
        return None
    strength = hp.Float("regularizer_strength", 1e-6, 1e-2, sampling="log")
    if kind == "l1":
        return keras.regularizers.L1(strength)
    if kind == "l2":
        return keras.regularizers.L2(strength)
    return keras.regularizers.L1L2(l1=strength, l2=strength)


def choose_batch_size(hp: HyperParameters, spec: ModelSpec) -> int:
    """Sample `batch_size` among 16-256.

    The choices never depend on the data size: Optuna needs one distribution per
    parameter across a study, and starting points must fit every dataset.
    """
    return hp.Choice("batch_size", [16, 32, 64, 128, 256])


def choose_optimizer(
    hp: HyperParameters, spec: ModelSpec, *, batch_size: int
) -> keras.optimizers.Optimizer:
    """Sample `optimizer`, `learning_rate` (log scale), `schedule` and their conditionals.

    Schedules decay over `spec.max_epochs` epochs of `batch_size`, so a trial that runs
    its full budget ends at a small learning rate.
    """
    import keras

    name = hp.Choice("optimizer", list(OPTIMIZERS))
    lr = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    schedule = hp.Choice("schedule", list(SCHEDULES))
    total_steps = spec.steps_per_epoch(batch_size) * spec.max_epochs
    rate: Any = lr
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps, alpha=0.01)
    elif schedule == "warmup_cosine":
        warmup = max(1, total_steps // 10)
        rate = keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=total_steps - warmup,
            alpha=0.01,
            warmup_target=lr,
            warmup_steps=warmup,
        )
    if name == "sgd":
        momentum = hp.Float("momentum", 0.0, 0.99)
        nesterov = hp.Boolean("nesterov")
        return keras.optimizers.SGD(rate, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adamw":
        decay = hp.Float("weight_decay", 1e-5, 1e-1, sampling="log")
        return keras.optimizers.AdamW(rate, weight_decay=decay)
    return {
        "adam": keras.optimizers.Adam,
        "nadam": keras.optimizers.Nadam,
        "rmsprop": keras.optimizers.RMSprop,
    }[name](rate)


def classification_head(
    x: keras.KerasTensor, spec: ModelSpec, initializer: str = "glorot_uniform"
) -> keras.KerasTensor:
    """The output layer: softmax over `spec.num_classes`."""
    import keras

    return keras.layers.Dense(
        spec.num_classes, activation="softmax", kernel_initializer=initializer, name="output"
    )(x)


def compile_for_task(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, spec: ModelSpec
) -> keras.Model:
    """Compile with the loss and metrics of `spec.task`; returns the model."""
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
