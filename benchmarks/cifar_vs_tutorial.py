"""`automl search cifar10 --timeout T` against the tutorial CNN trained alone for T.

Both run in this process's machine, one after the other, on the same split (the same
`load_dataset` call) and the same wall-clock budget. The tutorial CNN keeps its best
validation epoch (restore_best_weights), so the baseline is given its best shot.

    python -m benchmarks.cifar_vs_tutorial --minutes 20 --data-dir ../shared/data

Prints both test accuracies and their ratio, and appends a section to
benchmarks/EARLIER.md (which `python -m benchmarks run` copies into RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("EARLIER.md")


def train_tutorial(minutes: float, data_dir: Path, seed: int) -> dict[str, float]:
    """Train the cnn space's BASELINE point alone until the budget runs out."""
    import keras
    import optuna

    from automl.data import load_dataset
    from automl.engine._callbacks import Deadline
    from automl.engine._setup import model_spec
    from automl.export import test_metrics
    from automl.spaces import HyperParameters
    from search_spaces.cnn import BASELINE, build

    data = load_dataset("cifar10", data_dir=data_dir, seed=seed)
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    model = build(
        HyperParameters(optuna.trial.FixedTrial(BASELINE)),
        model_spec(data, data.encode(None), 1000),
    )
    history = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        batch_size=BASELINE["batch_size"],
        epochs=1000,
        verbose=0,
        callbacks=[
            Deadline(started + minutes * 60),
            keras.callbacks.EarlyStopping(
                "val_accuracy", mode="max", patience=1000, restore_best_weights=True
            ),
        ],
    )
    seconds = time.monotonic() - started
    metrics = test_metrics(model, data)
    return {
        "test_accuracy": metrics["accuracy"],
        "best_val_accuracy": max(history.history["val_accuracy"]),
        "epochs": len(history.history["val_accuracy"]),
        "seconds": round(seconds, 1),
    }


def run_search(minutes: float, data_dir: Path, seed: int) -> dict[str, float]:
    """Run the CLI exactly as a user would, in a fresh folder."""
    with tempfile.TemporaryDirectory() as work:
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "automl",
                "search",
                "cifar10",
                "--timeout",
                f"{minutes}m",
                "--data-dir",
                str(data_dir.resolve()),
                "--seed",
                str(seed),
            ],
            cwd=work,
            check=True,
        )
        seconds = time.monotonic() - started
        summary = json.loads((Path(work) / "automl-out/cifar10-auto/summary.json").read_text())
    return {
        "test_accuracy": summary["test"]["metrics"]["accuracy"],
        "best_val_accuracy": summary["best"]["val_metric"],
        "best_trial": summary["best"]["trial"],
        "trials": summary["trials"],
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    baseline = train_tutorial(args.minutes, args.data_dir, args.seed)
    print("tutorial CNN alone:", baseline, flush=True)
    search = run_search(args.minutes, args.data_dir, args.seed)
    print("automl search:", search, flush=True)
    ratio = search["test_accuracy"] / baseline["test_accuracy"]
    print(f"test accuracy ratio search/tutorial: {ratio:.3f}")
    command = (
        f"python -m benchmarks.cifar_vs_tutorial --minutes {args.minutes:g} "
        f"--data-dir {args.data_dir} --seed {args.seed}"
    )
    section = "\n".join(
        [
            f"## CIFAR-10: search vs the tutorial CNN alone, {args.minutes:g} minutes each",
            "",
            f"`{command}` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
            f"{os.cpu_count()} CPU cores, no GPU. One run (one seed).",
            "",
            "| contender | test accuracy | best val accuracy | wall time (s) | notes |",
            "|---|---|---|---|---|",
            f"| tutorial CNN alone | {baseline['test_accuracy']:.4f} | "
            f"{baseline['best_val_accuracy']:.4f} | {baseline['seconds']} | "
            f"{baseline['epochs']} epochs, best epoch restored |",
            f"| `automl search cifar10 --timeout {args.minutes:g}m` | "
            f"{search['test_accuracy']:.4f} | "
            f"{search['best_val_accuracy']:.4f} | {search['seconds']} | best trial "
            f"{search['best_trial']}; trials {search['trials']} |",
            "",
            f"Ratio of test accuracies (search / tutorial): **{ratio:.3f}**.",
            "",
        ]
    )
    previous = RESULTS.read_text() if RESULTS.exists() else "# Earlier measurements\n\n"
    RESULTS.write_text(previous + section)


if __name__ == "__main__":
    main()
