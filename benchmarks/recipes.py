"""Fast image recipe: test accuracy per budget, ablation, and engine vs bare throughput.

    python -m benchmarks.recipes [--quick] [--json PATH] [--budgets 15,55,165]
        [--parts compare,ablation,throughput] [--ablation-budget 55] [--contenders ...]
        [--ablations WORD,...]

Budgets are in T: one epoch of the tutorial CNN (the `cnn` space's BASELINE point) on
the 45,000 CIFAR-10 training images, measured at the start of the same run. Each
contender is trained alone on the 45k/5k/10k split (`automl.data.load_data("cifar10")`):
its seconds per epoch (training and the validation pass) are measured on a few steps,
the epochs that fit the budget are planned, and its learning-rate schedule decays over
exactly those epochs (`ModelSpec.max_epochs`), so no schedule is cut. The weights of the
best validation epoch are scored once on the 10,000 test images.

Contenders: `recipe` (the cnn space's first starting point, `FAST_RECIPE`), `modern` (its
modern CNN) and `tutorial` (its tutorial CNN); `recipe_wide` (the recipe with stages 2
and 3 at 128 and 256 filters) only when named in `--contenders`. The ablation trains the
recipe with one ingredient removed at a time (weight averaging, which the recipe leaves
out, added), next to the full recipe; `--ablations` picks some of them by a word of their
names (the whole list takes about 2 hours at 55 T, so it can be run in parts). Flip TTA
is scored on every trained model (flip + shift TTA too, in the JSON rows and
`benchmarks.budget`'s table). Throughput: images per second of the recipe's epochs in an
`automl.search` trial against a bare `model.fit` of the same model on the same arrays
(steady epochs after the first; target >= 0.95).

`--quick` is the smoke size (about 2 minutes): 2,000 training images, T measured on
them and scaled, budgets of 1 T, the recipe and the tutorial CNN, one ablation.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The shared CIFAR-10 copy beside the checkout, unless AUTOML_DATA_DIR names another.
DATA_DIR = Path(
    os.environ.get("AUTOML_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
FULL_TRAIN = 45_000
BUDGETS = (15.0, 55.0, 165.0)
THROUGHPUT_TARGET = 0.95
# Each ablation removes one ingredient of the recipe: what replaces it.
ABLATIONS: dict[str, dict[str, Any]] = {
    "no patch whitening": {"stem": "plain"},
    "with weight averaging (EMA, 0.99, into the model each epoch)": {"weight_averaging": "ema"},
    "no label smoothing": {"label_smoothing": 0.0},
    "ReLU instead of GELU": {"activation": "relu"},
    "pool at stage end (not after conv 1)": {"pool_first": False},
    "AdamW 2e-3 instead of Nesterov SGD": {
        "optimizer": "adamw",
        "learning_rate": 2e-3,
        "momentum": None,
    },
    "flips only (no translation)": {"augment": "flip"},
    "batch 128 instead of 256": {"batch_size": 128},
    "Keras' batch norm (momentum 0.99, with a scale)": {
        "batch_norm_momentum": 0.99,
        "batch_norm_scale": True,
    },
    "convolutions not started as the identity": {"identity_init": False},
    "weight decay on every weight (not the kernels only)": {"decay_kernels_only": False},
}


def contenders() -> dict[str, dict[str, Any]]:
    """Name -> the cnn space's point."""
    from search_spaces import cnn

    return {
        "recipe": dict(cnn.FAST_RECIPE),
        # The recipe with its later stages at the cnn space's widest filters: airbench
        # grows width, not depth, for longer budgets. About twice the epoch time here.
        "recipe_wide": {**cnn.FAST_RECIPE, "filters_2": 128, "filters_3": 256},
        "modern": dict(cnn.MODERN),
        "tutorial": cnn.BASELINE,
    }


def contender_names(text: str) -> str:
    """`--contenders` as given, once every name is one of `contenders()`.

    Raises:
        argparse.ArgumentTypeError: Naming the unknown ones and the known ones.
    """
    known = contenders()
    unknown = [name for name in text.split(",") if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown contender(s) {', '.join(unknown)}; pick from {', '.join(known)}"
        )
    return text


def ablation_names(text: str) -> list[str]:
    """The `ABLATIONS` picked by `--ablations`: each comma-separated word picks those whose
    name contains it (case-insensitive), in the list's order.

    Raises:
        argparse.ArgumentTypeError: Naming the words that pick none, and the names.
    """
    words = [word.strip().lower() for word in text.split(",") if word.strip()]
    unmatched = [word for word in words if not any(word in name.lower() for name in ABLATIONS)]
    if unmatched or not words:
        raise argparse.ArgumentTypeError(
            f"no ablation's name contains {', '.join(unmatched) or 'a word'}; pick by a word "
            f"of: {'; '.join(ABLATIONS)}"
        )
    return [name for name in ABLATIONS if any(word in name.lower() for word in words)]


def _load(quick: bool) -> tuple[Any, Any]:
    """CIFAR-10 and its spec (a 2,000-image training slice with --quick)."""
    from automl.data import load_data
    from automl.engine._setup import model_spec

    data = load_data("cifar10", data_dir=DATA_DIR)
    if quick:
        data = dataclasses.replace(data, x_train=data.x_train[:2000], y_train=data.y_train[:2000])
    return data, model_spec(data, data.encode(None), 1)


def _build(point: dict[str, Any], spec: Any, epochs: int) -> Any:
    """The cnn space's model for `point`, its schedule decaying over `epochs`."""
    import keras
    import optuna

    from automl.spaces import HyperParameters
    from search_spaces import cnn

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    point = {k: v for k, v in point.items() if v is not None}
    hp = HyperParameters(optuna.trial.FixedTrial(point))
    return cnn.build(hp, dataclasses.replace(spec, max_epochs=max(1, epochs))), hp


def epoch_seconds(point: dict[str, Any], data: Any, spec: Any, steps: int = 12) -> float:
    """Seconds of one epoch (training + validation pass) of `point` on `data`, from a
    timed run of `steps` steps after one warm-up epoch of the same steps, fed as a
    search's trial is (`automl.data._batches`)."""
    from automl.data._batches import evaluate_inputs, fit_inputs

    model, hp = _build(point, spec, 1)
    batch = int(point["batch_size"])
    n = min(len(data.x_train), batch * steps)
    train = fit_inputs(data.x_train[:n], data.y_train[:n], batch, shuffle=True)
    model.fit(**train, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(**train, epochs=1, verbose=0)
    per_image = (time.perf_counter() - started) / n
    nv = min(len(data.x_val), 2000)
    validation = evaluate_inputs(data.x_val[:nv], data.y_val[:nv], batch)
    model.evaluate(**validation, verbose=0)
    started = time.perf_counter()
    model.evaluate(**validation, verbose=0)
    per_val = (time.perf_counter() - started) / nv
    return per_image * len(data.x_train) + per_val * len(data.x_val)


def train_for_budget(
    point: dict[str, Any], data: Any, spec: Any, budget_s: float, estimate: float
) -> dict:
    """Train `point` for the epochs of `estimate` seconds that fit `budget_s`; its test
    accuracy and timings. When its epochs run slower than estimated, the rest of its
    schedule is squeezed into the epochs that fit and it stops by the budget's end; when
    they run faster, it is stretched over up to four times the epochs, as a search's
    long training is (`automl.engine._callbacks.ScheduleToTime`)."""
    import keras
    import numpy as np

    from automl.data._batches import fit_data
    from automl.engine._callbacks import ScheduleToTime
    from automl.engine._objective import STRETCH_MOST_LONG
    from automl.spaces.blocks import with_flip_tta

    epochs = max(1, int(budget_s // estimate))
    model, hp = _build(point, spec, epochs)
    stop = keras.callbacks.EarlyStopping(
        "val_accuracy", patience=epochs, mode="max", restore_best_weights=True
    )
    started = time.perf_counter()
    most = STRETCH_MOST_LONG * epochs
    to_time = ScheduleToTime(None, time.monotonic() + budget_s, epochs, most_epochs=most)
    batch = int(point["batch_size"])
    history = model.fit(  # fed as a search's trial is (`automl.data._batches`)
        **fit_data((data.x_train, data.y_train), (data.x_val, data.y_val), batch),
        epochs=most,
        callbacks=[stop, to_time, *hp.callbacks],
        verbose=0,
    )
    wall = time.perf_counter() - started
    accuracy, tta_accuracy, shift_accuracy = (
        float(np.mean(m.predict(data.x_test, batch_size=500, verbose=0).argmax(-1) == data.y_test))
        for m in (model, with_flip_tta(model), with_flip_tta(model, shifts=True))
    )
    return {
        "epochs": epochs,
        "skipped_epochs": to_time.skipped,
        "epochs_run": len(history.history["val_accuracy"]),
        "epoch_s_estimate": round(estimate, 1),
        "epoch_s": [round(s, 1) for s in to_time.durations],
        "train_s": round(wall, 1),
        "budget_s": round(budget_s, 1),
        "val_accuracy": [round(float(v), 4) for v in history.history["val_accuracy"]],
        "test_accuracy": round(accuracy, 4),
        "test_accuracy_flip_tta": round(tta_accuracy, 4),
        "test_accuracy_shift_tta": round(shift_accuracy, 4),
    }


def measure_t(data: Any, spec: Any, quick: bool) -> float:
    """Seconds of one tutorial-CNN epoch on 45,000 images (scaled from the slice), fed as
    a search's trial is: Keras' own feed of arrays could idle for up to a minute at the
    epoch's start (`automl.data._batches`), and T would hold that stall."""
    from automl.data._batches import fit_inputs
    from search_spaces import cnn

    model, _ = _build(cnn.BASELINE, spec, 1)
    batch = int(cnn.BASELINE["batch_size"])
    warm_up = fit_inputs(data.x_train[: batch * 4], data.y_train[: batch * 4], batch, shuffle=True)
    model.fit(**warm_up, verbose=0)
    epoch = fit_inputs(data.x_train, data.y_train, batch, shuffle=True)
    started = time.perf_counter()
    model.fit(**epoch, epochs=1, verbose=0)
    return (time.perf_counter() - started) * FULL_TRAIN / len(data.x_train)


class _EpochClock:
    """Wall times at each epoch's end (a Keras callback or the engine's observer hook)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def tick(self) -> None:
        self.times.append(time.perf_counter())

    def steady_s(self) -> float:
        """Median seconds of the epochs after the first (which traces the graphs)."""
        gaps = [b - a for a, b in zip(self.times, self.times[1:], strict=False)]
        return statistics.median(gaps)


def throughput(data: Any, quick: bool) -> dict[str, Any]:
    """Images/s of the recipe in an engine trial against a bare `fit` of the same model."""
    import keras

    import automl
    from automl.data import from_arrays
    from automl.engine import SearchObserver
    from automl.engine._setup import model_spec

    n = 2000 if quick else 12_000
    epochs = 2 if quick else 4  # two epoch ends give one steady epoch
    subset = from_arrays(data.x_train[:n], data.y_train[:n], kind="image", name="cifar_part")
    engine_clock, bare_clock = _EpochClock(), _EpochClock()

    class Clock(SearchObserver):
        def epoch_ended(self, number: int, epoch: int, max_epochs: int, logs: Any) -> None:
            engine_clock.tick()

    with tempfile.TemporaryDirectory() as work, contextlib.chdir(work):
        automl.search(
            "cnn",
            dataset=subset,
            trials=1,
            max_epochs=epochs,
            patience=epochs,
            pruner="none",
            storage=f"sqlite:///{work}/automl.db",
            tracking_uri=f"sqlite:///{work}/mlflow.db",
            out=Path(work) / "out",
            observer=Clock(),
        )
    spec = model_spec(subset, subset.encode(None), epochs)
    point = contenders()["recipe"]
    model, hp = _build(point, spec, epochs)
    tick = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: bare_clock.tick())
    model.fit(
        subset.x_train,
        subset.y_train,
        batch_size=int(point["batch_size"]),
        epochs=epochs,
        validation_data=(subset.x_val, subset.y_val),
        callbacks=[tick],
        verbose=0,
    )
    images = len(subset.x_train)
    engine, bare = images / engine_clock.steady_s(), images / bare_clock.steady_s()
    return {
        "train_images": images,
        "epochs": epochs,
        "engine_images_s": round(engine, 1),
        "bare_images_s": round(bare, 1),
        "ratio": round(engine / bare, 3),
        "target": THROUGHPUT_TARGET,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every part asked for, in one process, one after the other."""
    parts = set(args.parts.split(","))
    data, spec = _load(args.quick)
    t = measure_t(data, spec, args.quick)
    scale = len(data.x_train) / FULL_TRAIN  # a slice's budget: its share of the T
    budgets = [1.0] if args.quick else [float(b) for b in args.budgets.split(",")]
    result: dict[str, Any] = {
        "command": "python -m benchmarks.recipes " + " ".join(sys.argv[1:]),
        "quick": args.quick,
        "T_s": round(t, 1),
        "train": len(data.x_train),
        # Other processes on the machine stretch T and every timing: say how busy it was.
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    result["compare"] = {}
    names = "recipe,tutorial" if args.quick else args.contenders  # the smoke: every path once
    chosen = {k: v for k, v in contenders().items() if k in names.split(",")}
    if "compare" in parts:
        # Every epoch time measured up front, close to T: the machine's load at one moment
        # then plans all of them alike.
        estimates = {name: epoch_seconds(point, data, spec) for name, point in chosen.items()}
        for budget in budgets:
            for name, point in chosen.items():
                row = train_for_budget(point, data, spec, budget * t * scale, estimates[name])
                result["compare"][f"{budget:g}|{name}"] = row
                _progress(f"{budget:g} T {name}: {row}", result, args.json)
    if "ablation" in parts:
        budget = 1.0 if args.quick else args.ablation_budget
        recipe = contenders()["recipe"]
        result["ablation_budget_T"] = budget
        result["ablation"] = {}
        picked = args.ablations or list(ABLATIONS)
        variants = {"full recipe": {}, **{name: ABLATIONS[name] for name in picked}}
        points = {
            name: {**recipe, **change}
            for name, change in list(variants.items())[1 if args.quick else 0 :][
                : 1 if args.quick else None
            ]
        }
        estimates = {name: epoch_seconds(point, data, spec) for name, point in points.items()}
        for name, point in points.items():
            row = train_for_budget(point, data, spec, budget * t * scale, estimates[name])
            result["ablation"][name] = row
            _progress(f"ablation {name}: {row}", result, args.json)
    if "throughput" in parts:
        result["throughput"] = throughput(data, args.quick)
        _progress(f"throughput: {result['throughput']}", result, args.json)
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    return result


def _progress(text: str, result: dict[str, Any], path: Path | None, name: str = "recipes") -> None:
    """Say what finished, and save the figures so far (a later crash keeps them)."""
    print(f"{name}: {text}", flush=True, file=sys.stderr)
    if path is not None:
        path.write_text(json.dumps(result, indent=1))


def section(result: dict[str, Any]) -> str:
    """RESULTS.md section: accuracy per budget, the ablation, and throughput."""
    mode = "quick (2,000 training images, smoke only)" if result["quick"] else "full split"
    lines = [
        "## Fast image recipe: test accuracy at equal budgets (CIFAR-10)",
        "",
        f"Command: `{result['command']}`.",
        "",
        *([result["note"], ""] if result.get("note") else []),
        f"T = {result['T_s']:.1f} s (one tutorial-CNN epoch on 45,000 images, this run); "
        f"{mode}; 1-minute load average {result.get('load_average_at_start', '?')} at the "
        f"start, {result.get('load_average_at_end', '?')} at the end (2 means both cores "
        "busy). Each model trained alone for the epochs its measured epoch time fits in "
        "the budget, its schedule decaying over exactly those epochs; the best validation "
        "epoch's weights scored once on the 10,000 test images, as trained and with flip "
        "test-time augmentation (`automl.spaces.blocks.with_flip_tta`).",
        "",
        "| budget | model | epochs | train s (budget s) | test accuracy | with flip TTA |",
        "|---|---|---|---|---|---|",
    ]
    for key, row in result.get("compare", {}).items():
        budget, name = key.split("|")
        lines.append(
            f"| {budget} T | {name} | {row['epochs']} | {row['train_s']:.0f} "
            f"({row['budget_s']:.0f}) | {row['test_accuracy']:.4f} | "
            f"{row['test_accuracy_flip_tta']:.4f} |"
        )
    if result.get("ablation"):
        lines += [
            "",
            f"Ablation at {result['ablation_budget_T']:g} T (one ingredient changed at a time):",
            "",
            "| variant | epochs | test accuracy | with flip TTA |",
            "|---|---|---|---|",
        ]
        for name, row in result["ablation"].items():
            lines.append(
                f"| {name} | {row['epochs']} | {row['test_accuracy']:.4f} | "
                f"{row['test_accuracy_flip_tta']:.4f} |"
            )
    if result.get("throughput"):
        tp = result["throughput"]
        verdict = "meets" if tp["ratio"] >= tp["target"] else "misses"
        lines += [
            "",
            f"Throughput: the recipe's steady epochs (training + validation) in an engine "
            f"trial ran at {tp['engine_images_s']:.0f} images/s against {tp['bare_images_s']:.0f} "
            f"for a bare `model.fit` on the same {tp['train_images']:,} images: "
            f"**{tp['ratio']:.3f}**, which {verdict} the {tp['target']} target.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the options, run, write the JSON and print the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (about 2 minutes)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--budgets", default="15,55,165", help="budgets in T (default 15,55,165)")
    parser.add_argument(
        "--parts", default="compare,ablation,throughput", help="compare,ablation,throughput"
    )
    parser.add_argument(
        "--contenders",
        type=contender_names,
        default="recipe,modern,tutorial",
        help=f"comma-separated, of {','.join(contenders())} (default recipe,modern,tutorial)",
    )
    parser.add_argument("--ablation-budget", type=float, default=55.0, help="in T (default 55)")
    parser.add_argument(
        "--ablations",
        type=ablation_names,
        help="comma-separated words: only the ablations whose names contain one (default all)",
    )
    args = parser.parse_args()
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(section(result))


if __name__ == "__main__":
    main()
