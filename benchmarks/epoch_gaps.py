"""The idle gap before each epoch's first batch: Keras' own array pipeline against
`automl.data._batches` (the same pipeline with tf.data's autotuning off).

    python -m benchmarks.epoch_gaps EPOCHS [--feeds keras,automl] [--json PATH]

Each feed trains the fast recipe (`search_spaces.cnn.FAST_RECIPE`, seed 0, its schedule
over EPOCHS) on the full 45k/5k CIFAR-10 split, one feed after the other in this
process. Per epoch it records the wall seconds, the seconds from the epoch's start to
its first batch (the gap: tf.data's autotuning thread can hold the end of the last
epoch's iterator for up to a minute), and the validation pass. The gaps come at random,
so compare their sums and the mean epoch over enough epochs (10 or more), not single
epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import recipes

FEEDS = ("keras", "automl")


def _clock() -> Any:
    """A callback that times each epoch, the gap before its first batch and its validation."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[dict[str, float]] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started, self.first = time.monotonic(), None

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if self.first is None:
                self.first = time.monotonic() - self.started

        def on_test_begin(self, logs: dict | None = None) -> None:
            self.test_started = time.monotonic()

        def on_test_end(self, logs: dict | None = None) -> None:
            self.test_s = time.monotonic() - self.test_started

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seconds = time.monotonic() - self.started
            row = {"epoch_s": seconds, "gap_s": self.first or 0.0, "validation_s": self.test_s}
            self.rows.append({k: round(v, 1) for k, v in row.items()})

    return EpochClock()


def train(feed: str, epochs: int, data: Any, spec: Any) -> dict[str, Any]:
    """Train the recipe for `epochs`, fed by `feed`; its epochs' timings and accuracy."""
    from automl.data._batches import fit_data
    from search_spaces import cnn

    model, hp = recipes._build(dict(cnn.FAST_RECIPE), spec, epochs)
    batch = int(cnn.FAST_RECIPE["batch_size"])
    clock = _clock()
    train, validation = (data.x_train, data.y_train), (data.x_val, data.y_val)
    if feed == "keras":
        fed = {"x": train[0], "y": train[1], "batch_size": batch, "validation_data": validation}
    else:
        fed = fit_data(train, validation, batch)
    started = time.perf_counter()
    history = model.fit(
        **fed,
        epochs=epochs,
        callbacks=[*hp.callbacks, clock],
        verbose=0,
    )
    epoch_s = [row["epoch_s"] for row in clock.rows]
    return {
        "feed": feed,
        "wall_s": round(time.perf_counter() - started, 1),
        "mean_epoch_s": round(statistics.mean(epoch_s), 1),
        "median_epoch_s": round(statistics.median(epoch_s), 1),
        "gaps_s": round(sum(row["gap_s"] for row in clock.rows), 1),
        "longest_gap_s": max(row["gap_s"] for row in clock.rows),
        "val_accuracy": round(float(history.history["val_accuracy"][-1]), 4),
        "epochs": clock.rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("epochs", type=int)
    parser.add_argument("--feeds", default=",".join(FEEDS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    feeds = [f for f in args.feeds.split(",") if f]
    unknown = sorted(set(feeds) - set(FEEDS))
    if unknown:
        parser.error(f"unknown feed(s) {unknown}; choose from {', '.join(FEEDS)}")
    data, spec = recipes._load(False)
    rows = []
    for feed in feeds:
        row = train(feed, args.epochs, data, spec)
        rows.append(row)
        summary = {k: v for k, v in row.items() if k != "epochs"}
        print(f"epoch gaps: {summary} (load average {os.getloadavg()[0]:.2f})", flush=True)
    if len(rows) == 2:
        ratio = rows[1]["mean_epoch_s"] / rows[0]["mean_epoch_s"]
        print(f"mean epoch, {rows[1]['feed']} / {rows[0]['feed']}: {ratio:.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
