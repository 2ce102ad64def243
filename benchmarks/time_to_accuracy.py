"""The fast image recipe's accuracy for a number of epochs, and the seconds it took:
its time to an accuracy on whatever machine runs it (#15 asks for the time to 94 % on
a GPU).

    python -m benchmarks.time_to_accuracy RUN [RUN ...] [--json PATH] [--quick]

Each RUN is `WIDTHS:EPOCHS`, e.g. `32-64-128:16` (the recipe as it is) or
`64-256-256:10` (airbench's widths): the recipe (`search_spaces.cnn.FAST_RECIPE`, seed
0) with those stage widths, its schedule decaying over EPOCHS, trained on the 45k split
and scored on the 10,000 test images as trained, with flip TTA and with flip + translate
TTA (`benchmarks.probe_ingredients.tta_accuracies`). Per epoch it records the wall
seconds and the validation accuracy; the first epoch holds the compilation, so the
steady seconds are given apart. On a GPU the model is built in mixed precision
(`automl.spaces.training.mixed_precision_on_gpu`, as the cnn space does), and any
Keras backend works (JAX where TensorFlow is not installed).

Accuracy per epoch does not depend on the machine, so a GPU run also says how many
epochs of a width a CPU budget must buy to reach an accuracy. Results are appended to
the JSON file after each run, so a run cut short keeps the ones before it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import recipes
from benchmarks.probe_ingredients import report, tta_accuracies


def run_spec(text: str) -> tuple[list[int], int]:
    """`WIDTHS:EPOCHS` (`32-64-128:16`) as ([32, 64, 128], 16).

    Raises:
        argparse.ArgumentTypeError: Saying what the text should look like.
    """
    widths, sep, epochs = text.partition(":")
    try:
        parsed = [int(w) for w in widths.split("-")]
        count = int(epochs)
    except ValueError:
        parsed, count = [], 0
    if not sep or len(parsed) != 3 or count < 1 or min(parsed) < 1:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHS:EPOCHS with three stage widths, e.g. 32-64-128:16; got {text!r}"
        )
    return parsed, count


def _epoch_clock(label: str) -> Any:
    """A callback that keeps each epoch's wall seconds (training and validation) and
    prints them with the validation accuracy, so a slow or stuck run shows where it is."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.seconds: list[float] = []
            self.last = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            self.seconds.append(now - self.last)
            self.last = now
            accuracy = (logs or {}).get("val_accuracy", float("nan"))
            print(
                f"{label} epoch {epoch + 1}: {self.seconds[-1]:.1f} s, val {accuracy:.4f}",
                flush=True,
            )

    return EpochClock()


@contextlib.contextmanager
def widths_allowed(widths: list[int]) -> Iterator[None]:
    """The cnn space's filter choices with `widths` added, for the builds inside: airbench's
    64/256/256 lies outside them (stage 2 stops at 128, to bound a CPU trial's cost)."""
    from search_spaces import cnn

    saved = {stage: list(choices) for stage, choices in cnn.FILTERS.items()}
    for stage, width in enumerate(widths, start=1):
        cnn.FILTERS[stage] = sorted({*saved[stage], width})
    try:
        yield
    finally:
        cnn.FILTERS.update(saved)


def train(widths: list[int], epochs: int, data: Any, spec: Any) -> dict[str, Any]:
    """Train the recipe at `widths` for `epochs`; its figures."""
    import keras

    from automl.data._batches import fit_data
    from search_spaces import cnn

    point = {**cnn.FAST_RECIPE, **{f"filters_{i}": w for i, w in enumerate(widths, 1)}}
    with widths_allowed(widths):
        model, hp = recipes._build(point, spec, epochs)
    clock = _epoch_clock("-".join(map(str, widths)))
    batch = int(point["batch_size"])
    history = model.fit(
        **fit_data((data.x_train, data.y_train), (data.x_val, data.y_val), batch),
        epochs=epochs, callbacks=[clock, *hp.callbacks], verbose=0,
    )  # fmt: skip
    steady = clock.seconds[1:] or clock.seconds
    return {
        "widths": widths,
        "epochs": epochs,
        "parameters": model.count_params(),
        "dtype_policy": model.dtype_policy.name,
        "train_s": round(sum(clock.seconds), 1),
        "first_epoch_s": round(clock.seconds[0], 1),
        "steady_epoch_s": round(sorted(steady)[len(steady) // 2], 2),
        "val": [round(float(v), 4) for v in history.history["val_accuracy"]],
        **tta_accuracies(model, data.x_test, data.y_test),
        "backend": keras.backend.backend(),
    }


def device() -> str:
    """The accelerator Keras trains on, or "cpu"."""
    from automl.spaces.training import gpu_devices

    gpus = gpu_devices()
    return gpus[0] if gpus else f"cpu ({os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=run_spec, help="WIDTHS:EPOCHS, e.g. 32-64-128:16")
    parser.add_argument("--json", type=Path, help="append each run's figures here")
    parser.add_argument("--quick", action="store_true", help="a 2,000-image training slice")
    args = parser.parse_args()
    started = time.perf_counter()
    data, spec = recipes._load(args.quick)
    where = device()
    print(f"data loaded in {time.perf_counter() - started:.0f} s; training on {where}")
    for widths, epochs in args.runs:
        report({"device": where, **train(widths, epochs, data, spec)}, args.json)


if __name__ == "__main__":
    main()
