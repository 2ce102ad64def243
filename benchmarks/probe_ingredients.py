"""airbench's ingredients, one at a time, at a fixed number of epochs on the full
45k/5k/10k CIFAR-10 split. Since 2026-12-05 the recipe holds three of them as `cnn`
parameters (`bn`: `batch_norm_momentum` and `batch_norm_scale`; `dirac`:
`identity_init`; `kernel_decay`: `decay_kernels_only`), so naming those here repeats
them; `--set identity_init=false` and the like take one out.

    python -m benchmarks.probe_ingredients EPOCHS NAME [bn] [dirac] [lookahead]
        [kernel_decay] [max_head] [bias_lr] [whiten_bias] [alt_flip] [--set KEY=VALUE ...]
        [--jsonl PATH]

Each run trains the recipe (`search_spaces.cnn.FAST_RECIPE`, seed 0, its schedule over
EPOCHS) with the ingredients named, then scores the test split as trained, with flip
TTA, and with airbench's flip and one-pixel translate TTA (six views). The ingredients,
applied to the built model before training:

- `bn`: batch norm with momentum 0.4 in Keras' sense, its scale frozen at 1 as
  airbench's (airbench's momentum is 0.6 in Keras' sense: this probe first read it the
  other way round, and 0.4 is what it measured).
- `dirac`: each 3x3 convolution with at least as many outputs as inputs starts as the
  identity on its first outputs (PyTorch's `dirac_`).
- `lookahead`: every 5 steps the slow weights move toward the fast ones with a decay
  rising as the cube of progress to 0.95^5, and the fast ones are reset to them; the
  slow ones are kept at the end.
- `kernel_decay`: weight decay on the kernels only, batch norm's scale and offset and
  the biases left out (Keras decays every variable; airbench decays its offsets too,
  at the kernels' effective rate).
- `max_head`: airbench's head in place of the global average: the last feature map's
  maximum, a dense layer without bias, its logits scaled by 1/9 before the softmax.
- `bias_lr`: batch norm's offsets learn 64 times faster than the other weights
  (airbench's `bias_scaler`), their decay unchanged, as airbench's is (PyTorch's decay
  is the rate times its own: airbench divides the offsets' decay by 64). Their
  gradients are scaled before the optimizer, which for SGD with momentum is the same.
- `whiten_bias`: the whitening convolution's bias trains for the first 3 epochs, then
  freezes again (airbench's `whiten_bias_epochs`); its kernel stays as fitted.
- `alt_flip`: airbench's alternating flip, in the feed: a random half of the training
  images is mirrored in the first epoch, and every image is mirrored in every other
  epoch from then on, so each is seen both ways in any two epochs in a row. The
  model's own random flip must be off (`--set augment=translate`).

`--set` changes a value of the recipe's point first (`--set weight_decay=5e-4`), so a
hyperparameter of the space is probed the same way.

Timings are wall seconds on a shared machine: compare the accuracies, not the times.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from automl.spaces.training import NOT_DECAYED
from benchmarks import recipes

INGREDIENTS = (
    "bn",
    "dirac",
    "lookahead",
    "kernel_decay",
    "max_head",
    "bias_lr",
    "whiten_bias",
    "alt_flip",
)
LOOKAHEAD_EVERY = 5
LOOKAHEAD_DECAY = 0.95**LOOKAHEAD_EVERY
BIAS_LR_SCALE = 64.0  # airbench's bias_scaler
WHITEN_BIAS_EPOCHS = 3  # airbench's whiten_bias_epochs


def with_airbench_batch_norm(model: Any) -> None:
    """Batch norm momentum 0.4 (Keras' sense), the scale frozen at 1."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.4
            if layer.scale:  # the recipe's own has none (`batch_norm_scale`)
                layer.gamma.trainable = False


def with_dirac_init(model: Any) -> None:
    """Each convolution with an odd kernel and outputs >= inputs passes its input through
    at first (`automl.spaces.blocks.start_as_identity`, the recipe's `identity_init`)."""
    import keras

    from automl.spaces.blocks import start_as_identity

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            start_as_identity(layer)


def with_bias_lr(model: Any, scale: float = BIAS_LR_SCALE) -> None:
    """Batch norm's offsets learn `scale` times faster: their gradients are scaled on
    their way into `model.optimizer` (the decay, Keras' rate times the weight, stays)."""
    import keras

    offsets = {
        id(layer.beta)
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization) and layer.center
    }
    optimizer = model.optimizer
    plain = optimizer.apply  # every backend's train step ends in it

    def apply(grads: Any, trainable_variables: Any = None) -> Any:
        variables = trainable_variables or optimizer._trainable_variables
        scaled = [
            g * scale if id(v) in offsets else g for g, v in zip(grads, variables, strict=True)
        ]
        return plain(scaled, trainable_variables)

    optimizer.apply = apply


def with_max_head(model: Any) -> Any:
    """`model` (a global-average head) with airbench's: max-pooled features, a dense
    layer without bias, logits times 1/9; compiled as `model` was."""
    import keras

    pool = next(x for x in model.layers if isinstance(x, keras.layers.GlobalAveragePooling2D))
    x = keras.layers.GlobalMaxPooling2D()(pool.input)
    classes = model.output.shape[-1]
    x = keras.layers.Dense(classes, use_bias=False, dtype="float32")(x)
    x = keras.layers.Rescaling(1 / 9, dtype="float32")(x)
    output = keras.layers.Softmax(dtype="float32", name="output")(x)
    headed = keras.Model(model.inputs, output, name=model.name)
    headed.compile_from_config(model.get_compile_config())
    if getattr(model.optimizer, "_exclude_from_weight_decay_pattern", None):  # not in config
        headed.optimizer.exclude_from_weight_decay(var_names=[NOT_DECAYED])
    return headed


def alternating_flip(x: Any, y: Any, batch_size: int, seed: int = 0) -> tuple[Any, Any]:
    """The training feed of `alt_flip`: a trial's own feed (`automl.data._batches`) with
    each image's index beside it, mirrored by index and epoch; and the callback that
    tells it the epoch."""
    import keras
    import numpy as np
    import tensorflow as tf

    from automl.data._batches import in_memory_batches

    first = tf.constant(np.random.default_rng(seed).random(len(x)) < 0.5)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def mirror(inputs: Any, labels: Any) -> Any:
        images, indices = inputs
        odd = tf.equal(epoch % 2, 1)
        flip = tf.not_equal(tf.gather(first, indices), odd)[:, None, None, None]  # xor
        return tf.where(flip, tf.reverse(images, axis=[2]), images), labels

    indexed = in_memory_batches([x, np.arange(len(x))], y, batch_size, shuffle=True)

    class Epoch(keras.callbacks.Callback):
        def on_epoch_begin(self, index: int, logs: dict | None = None) -> None:
            epoch.assign(index)  # before Keras makes the epoch's iterator

    return indexed.map(mirror), Epoch()


def lookahead(total_steps: int) -> Any:
    """airbench's Lookahead as a Keras callback over `total_steps` training steps."""
    import keras

    class Lookahead(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.step = 0
            self.weights = [v for v in self.model.weights if "float" in str(v.dtype)]
            self.slow = [v.numpy() for v in self.weights]

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.step += 1
            if self.step % LOOKAHEAD_EVERY:
                return
            decay = LOOKAHEAD_DECAY * (self.step / total_steps) ** 3
            for variable, slow in zip(self.weights, self.slow, strict=True):
                slow *= decay
                slow += (1 - decay) * variable.numpy()
                variable.assign(slow)

        def on_train_end(self, logs: dict | None = None) -> None:
            for variable, slow in zip(self.weights, self.slow, strict=True):
                variable.assign(slow)

    return Lookahead()


def whiten_bias(model: Any, epochs: int = WHITEN_BIAS_EPOCHS) -> Any:
    """Makes the whitening convolution's bias trainable (its kernel stays frozen), and
    returns the callback that freezes it after `epochs` epochs."""
    import keras

    layer = model.get_layer("whiten")
    layer.trainable = True
    layer.kernel.trainable = False

    class FreezeWhitenBias(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch + 1 == epochs:
                layer.bias.trainable = False
                self.model.make_train_function(force=True)  # fit calls it anew each step

    return FreezeWhitenBias()


def tta_accuracies(model: Any, x: Any, y: Any) -> dict[str, float]:
    """Test accuracy as trained, with flip TTA, and with flip + shift TTA (airbench's
    level 2, `automl.spaces.blocks.with_flip_tta(shifts=True)`: six views)."""
    import numpy as np

    from automl.spaces.blocks import with_flip_tta

    def accuracy(tested: Any) -> float:
        probabilities = tested.predict(x, batch_size=500, verbose=0)
        return round(float(np.mean(probabilities.argmax(-1) == y)), 4)

    return {
        "test": accuracy(model),
        "test_flip": accuracy(with_flip_tta(model)),
        "test_flip_translate": accuracy(with_flip_tta(model, shifts=True)),
    }


def probe(
    epochs: int, ingredients: set[str], changes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train the recipe, with `changes` to its point and `ingredients`, for `epochs`;
    its figures."""
    from automl.data._batches import fit_data
    from search_spaces import cnn

    data, spec = recipes._load(False)
    point = {**cnn.FAST_RECIPE, **(changes or {})}
    model, hp = recipes._build(point, spec, epochs)
    if "bn" in ingredients:
        with_airbench_batch_norm(model)
    if "dirac" in ingredients:
        with_dirac_init(model)
    if "max_head" in ingredients:
        model = with_max_head(model)
    if "bias_lr" in ingredients:
        with_bias_lr(model)
    if "kernel_decay" in ingredients:  # before fit builds the optimizer
        model.optimizer.exclude_from_weight_decay(var_names=[NOT_DECAYED])
    batch = int(point["batch_size"])
    callbacks = list(hp.callbacks)
    if "whiten_bias" in ingredients:
        callbacks.append(whiten_bias(model))
    if "lookahead" in ingredients:
        callbacks.append(lookahead(epochs * -(-len(data.x_train) // batch)))
    feed = fit_data((data.x_train, data.y_train), (data.x_val, data.y_val), batch)
    if "alt_flip" in ingredients:
        if "flip" in point["augment"]:
            raise SystemExit("alt_flip replaces the model's random flip: --set augment=translate")
        feed["x"], epoch_counter = alternating_flip(data.x_train, data.y_train, batch)
        callbacks.append(epoch_counter)
    started = time.perf_counter()
    history = model.fit(  # fed as a search's trial is (`automl.data._batches`)
        **feed, epochs=epochs, callbacks=callbacks, verbose=0
    )
    wall = time.perf_counter() - started
    return {
        "ingredients": sorted(ingredients),
        "changes": changes or {},
        "epochs": epochs,
        "wall_s": round(wall),
        "val": [round(v, 4) for v in history.history["val_accuracy"]],
        **tta_accuracies(model, data.x_test, data.y_test),
        "load_average": os.getloadavg()[0],
    }


def recipe_change(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` as a change to the recipe's point: the value read as JSON where it
    parses (numbers, true/false), else kept as text; the key must be the recipe's."""
    from search_spaces import cnn

    key, sep, value = text.partition("=")
    if not sep or key not in cnn.FAST_RECIPE:
        known = ", ".join(sorted(cnn.FAST_RECIPE))
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with KEY one of {known}; got {text!r}"
        )
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def ingredient(text: str) -> str:
    """One of `INGREDIENTS` (argparse's `choices` refuses an empty `nargs="*"` list)."""
    if text not in INGREDIENTS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(INGREDIENTS)}; got {text!r}")
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: epochs, a name, ingredients, recipe changes, the JSONL file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("epochs", type=int)
    parser.add_argument("name")
    parser.add_argument("ingredients", nargs="*", type=ingredient)
    parser.add_argument(
        "--set", dest="changes", action="append", default=[], type=recipe_change,
        metavar="KEY=VALUE", help="change one value of the recipe's point (repeatable)",
    )  # fmt: skip
    parser.add_argument("--jsonl", type=Path, help="append the row here")
    return parser.parse_args(argv)


def report(row: dict[str, Any], jsonl: Path | None) -> None:
    """Print `row` as one JSON line, and append it to `jsonl` when given, so a series of
    runs cut short keeps the ones before."""
    print(json.dumps(row), flush=True)
    if jsonl:
        with jsonl.open("a") as out:
            out.write(json.dumps(row) + "\n")


def main() -> None:
    args = parse_args()
    row = {"name": args.name, **probe(args.epochs, set(args.ingredients), dict(args.changes))}
    report(row, args.jsonl)


if __name__ == "__main__":
    main()
