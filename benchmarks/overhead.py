"""Engine overhead: trials run by `automl.search` against the same models fitted bare.

    python -m benchmarks.overhead [--quick] [--json PATH]

A real search on `digits` (mlp space, no pruner) with tracking on as the CLI has it by
default (Optuna and MLflow in SQLite files of a temp folder). As each trial ends, in
the observer's `trial_ended` (so both sides share the machine's state of the moment),
its model is rebuilt from its params with its seed and fitted with a bare `model.fit`:
same arrays and batch size, exactly the epochs the engine trained, validation data,
only the callbacks the model asks for. Build, compile and fit are timed, and that time
is taken out of the engine's. Ratios over the bare fits of the same trials (medians):
per trial (`datetime_start` to `datetime_complete`: sampling, storage, MLflow,
checkpoint, callbacks); the search loop (all of `study.optimize`, between-trial work
included), in wall and in CPU time (which other processes' load barely moves): the
headline; end to end (the whole `automl.search` call, set-up and export included).

Sets `AUTOML_RECYCLE_MB=0` so every trial runs in this process.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from automl.record import TrialRecord
from benchmarks import benchmark_main

TARGET = 1.03
DATASET, SPACE, SEED, STUDY = "digits", "mlp", 0, "overhead"
# Small trials show the fixed per-trial cost; long ones what is left of it.
QUICK = [{"trials": 3, "epochs": 3, "rounds": 1}]
FULL = [{"trials": 6, "epochs": 5, "rounds": 2}, {"trials": 4, "epochs": 20, "rounds": 1}]


def _bare_fit(data: Any, spec: Any, trial: Any) -> tuple[float, float, bool]:
    """Build, compile and fit one trial's model with plain Keras.

    Returns:
        Wall and CPU seconds for build, compile and fit, and whether the last validation
        accuracy equals the engine's (the same model trained the same way).
    """
    import keras
    import optuna

    from automl.spaces import HyperParameters
    from search_spaces.mlp import build

    facts = TrialRecord.read(trial)
    epochs = facts.epochs
    # The engine collected garbage just before this hook; ours is collected below.
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(facts.seed)  # the engine's: the same weights
    started, cpu = time.perf_counter(), time.process_time()
    hp = HyperParameters(optuna.trial.FixedTrial(trial.params))
    model = build(hp, spec)
    history = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        batch_size=trial.params["batch_size"],
        epochs=epochs,
        callbacks=hp.callbacks,  # e.g. ReduceLROnPlateau: part of the model's recipe
        verbose=0,
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    same = abs(history.history["val_accuracy"][-1] - trial.intermediate_values[epochs]) < 1e-6
    del model, history
    keras.utils.clear_session(free_memory=True)  # leave the engine no garbage of ours
    return seconds, cpu, same


def _clock() -> tuple[float, float]:
    """(wall, CPU) seconds now."""
    return time.perf_counter(), time.process_time()


def _paired_round(data: Any, spec: Any, trials: int, epochs: int) -> dict[str, Any]:
    """One tracked search in a fresh folder; each trial's model is refitted bare right
    after it (between trials, so both sides see the same machine), and the time spent
    on that is taken out of the engine's times."""
    import optuna

    import automl
    from automl.engine import SearchObserver

    class Pairing(SearchObserver):
        """Times `study.optimize` and runs the bare fit of each trial as it ends."""

        def __init__(self, storage: str) -> None:
            self.storage, self.study = storage, None
            self.marks: dict[str, tuple[float, float]] = {}
            self.hook = [0.0, 0.0]  # wall and CPU spent here, not by the engine
            self.rows: list[dict[str, Any]] = []
            self.in_hook, self.gc_s, self.gc_started, self.gc_passes = False, 0.0, 0.0, 0

        def gc_timer(self, phase: str, info: dict[str, int]) -> None:
            """gc.callbacks hook: full collections in the loop, outside our bare fits."""
            if info["generation"] == 2 and "start" in self.marks and "end" not in self.marks:
                if phase == "start":
                    self.gc_started = time.perf_counter()
                elif not self.in_hook:
                    self.gc_s += time.perf_counter() - self.gc_started
                    self.gc_passes += 1

        def search_started(self, **_: Any) -> None:
            self.marks["start"] = _clock()

        def trial_ended(self, number: int, state: str, *_: Any) -> None:
            entered, self.in_hook = _clock(), True
            self.study = self.study or optuna.load_study(study_name=STUDY, storage=self.storage)
            trial = self.study.trials[number]
            if state == "COMPLETE":
                bare_s, bare_cpu_s, same = _bare_fit(data, spec, trial)
                span = trial.datetime_complete - trial.datetime_start
                self.rows.append(
                    {
                        "number": number,
                        "epochs": TrialRecord.read(trial).epochs,
                        "batch_size": trial.params["batch_size"],
                        "engine_s": span.total_seconds(),
                        "bare_s": bare_s,
                        "bare_cpu_s": bare_cpu_s,
                        "same_curve": same,
                    }
                )
            left, self.in_hook = _clock(), False
            self.hook = [self.hook[0] + left[0] - entered[0], self.hook[1] + left[1] - entered[1]]

        def stage(self, text: str) -> None:
            if "start" in self.marks and "end" not in self.marks:
                self.marks["end"] = _clock()

    with tempfile.TemporaryDirectory() as tmp:
        pairing = Pairing(f"sqlite:///{tmp}/automl.db")
        gc.callbacks.append(pairing.gc_timer)
        started = time.perf_counter()
        try:
            automl.search(
                DATASET,
                space=SPACE,
                trials=trials,
                max_epochs=epochs,
                pruner="none",
                seed=SEED,
                study=STUDY,
                storage=pairing.storage,
                tracking_uri=f"sqlite:///{tmp}/mlflow.db",  # on, as the CLI's default
                out=Path(tmp) / "out",
                observer=pairing,
            )
        finally:
            gc.callbacks.remove(pairing.gc_timer)
        search_s = time.perf_counter() - started - pairing.hook[0]
    (wall0, cpu0), (wall1, cpu1) = pairing.marks["start"], pairing.marks["end"]
    optimize_s, optimize_cpu_s = wall1 - wall0 - pairing.hook[0], cpu1 - cpu0 - pairing.hook[1]
    rows = pairing.rows
    bare, bare_cpu = sum(r["bare_s"] for r in rows), sum(r["bare_cpu_s"] for r in rows)
    return {
        "optimize_s": optimize_s,
        "optimize_cpu_s": optimize_cpu_s,
        "gc_s": pairing.gc_s,
        "gc_passes": pairing.gc_passes,
        "search_s": search_s,
        "bare_sum_s": bare,
        "loop_ratio": optimize_s / bare,
        "loop_cpu_ratio": optimize_cpu_s / bare_cpu,
        "search_ratio": search_s / bare,
        "trials": rows,
    }


def _variant(data: Any, spec: Any, trials: int, epochs: int, rounds: int) -> dict[str, Any]:
    """Rounds of paired searches; medians over trials and rounds."""
    done = [_paired_round(data, spec, trials, epochs) for _ in range(rounds)]
    rows = [r for d in done for r in d["trials"]]
    median = statistics.median
    return {
        "trials": trials,
        "epochs": epochs,
        "rounds": rounds,
        "median_bare_s": median(r["bare_s"] for r in rows),
        "median_epochs": median(r["epochs"] for r in rows),
        "trial_ratio": median(r["engine_s"] / r["bare_s"] for r in rows),
        "loop_ratio": median(d["loop_ratio"] for d in done),
        "loop_cpu_ratio": median(d["loop_cpu_ratio"] for d in done),
        "search_ratio": median(d["search_ratio"] for d in done),
        # What the loop costs beyond the bare fits, per trial.
        "extra_s_per_trial": median(
            (d["optimize_s"] - d["bare_sum_s"]) / len(d["trials"]) for d in done
        ),
        "gc_s_per_trial": median(d["gc_s"] / len(d["trials"]) for d in done),
        "gc_passes_per_trial": median(d["gc_passes"] / len(d["trials"]) for d in done),
        "same_curves": sum(r["same_curve"] for r in rows),
        "fits": len(rows),
        "round_details": done,
    }


def run(quick: bool) -> dict[str, Any]:
    """Measure every variant of `QUICK` or `FULL`; returns figures and settings."""
    os.environ["AUTOML_RECYCLE_MB"] = "0"  # one process: in-process figures only
    import dataclasses

    import keras

    from automl.data import load_dataset
    from automl.engine._setup import model_spec

    started = time.perf_counter()
    data = load_dataset(DATASET, seed=SEED)  # the split the engine makes with this seed
    # The engine's spec names the scored metric; the bare build must compile the same.
    spec = dataclasses.replace(model_spec(data, data.encode(None), 1), metric="accuracy")
    warm = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])  # load TF kernels
    warm.compile("adam", "sparse_categorical_crossentropy")
    warm.fit(data.x_train[:64], data.y_train[:64], verbose=0)
    variants = []
    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bars: stdout is Markdown
        for v in QUICK if quick else FULL:
            spec = dataclasses.replace(spec, max_epochs=v["epochs"])  # schedules decay over it
            variants.append(_variant(data, spec, v["trials"], v["epochs"], v["rounds"]))
    return {
        "dataset": DATASET,
        "space": SPACE,
        "seed": SEED,
        "pruner": "none",
        "tracking": "Optuna and MLflow in SQLite, the CLI default",
        "quick": quick,
        "target": TARGET,
        "cpu_count": os.cpu_count(),
        "variants": variants,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def section(result: dict[str, Any]) -> str:
    """RESULTS.md section: a row per variant, then what the ratios mean."""
    target, variants = result["target"], result["variants"]
    lines = [
        "## Engine overhead: trials in the engine vs the same models with bare `model.fit`",
        "",
        f"`{result['dataset']}`, `{result['space']}` space, seed {result['seed']}, no pruner, "
        f"tracking on ({result['tracking']}), {result['cpu_count']} CPU cores, "
        f"{'quick' if result['quick'] else 'full'} mode. Ratios are engine time over the "
        "bare fits of the same trials, each fitted right after its trial; medians.",
        "",
        "| trials x max epochs | rounds | median epochs | median bare fit (s) | per trial "
        "| search loop | search loop, CPU time | end to end | loop s added per trial "
        "| full GC in the loop, s (passes) per trial | same curves |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        lines.append(
            f"| {v['trials']} x {v['epochs']} | {v['rounds']} | {v['median_epochs']:g} | "
            f"{v['median_bare_s']:.2f} | {v['trial_ratio']:.3f} | {v['loop_ratio']:.3f} | "
            f"{v['loop_cpu_ratio']:.3f} | {v['search_ratio']:.3f} | "
            f"{v['extra_s_per_trial']:.2f} | {v['gc_s_per_trial']:.2f} "
            f"({v['gc_passes_per_trial']:.1f}) | "
            f"{v['same_curves']}/{v['fits']} |"
        )
    short = variants[0]

    def pair(key: str) -> str:  # "1.2x on 2 s trials and 1.1x on 8 s trials"
        return " and ".join(f"{v[key]:.3f}x on {v['median_bare_s']:.1f} s trials" for v in variants)

    meets = [v["loop_ratio"] <= target for v in variants]
    verdict = "meets" if all(meets) else "misses" if not any(meets) else "meets only on long trials"
    cost = short["extra_s_per_trial"]
    below = (
        " (below 1: with no per-batch callback, Keras hands each batch's callbacks to a "
        "thread pool, which here costs more than the engine's per-batch checks run inline)"
        if any(v["trial_ratio"] < 1 for v in variants)
        else ""
    )
    lines += [
        "",
        f"What it means: the search loop (every trial plus the work between trials) takes "
        f"{pair('loop_ratio')}, so it {verdict} the {target} target (in CPU time, which "
        f"other processes barely move: {pair('loop_cpu_ratio')}). Inside a trial, from "
        f"sampling to storing its result, the engine takes {pair('trial_ratio')}{below}; "
        f"the rest is between trials. The loop adds {cost:.2f} s per "
        f"{short['median_epochs']:g}-epoch trial, of which {short['gc_s_per_trial']:.2f} s "
        f"go to {short['gc_passes_per_trial']:.1f} full garbage-collection passes (Optuna "
        f"collects after every trial; any more are Python's own during a fit); with "
        f"TensorFlow loaded each pass walks a large heap, and it grows as one process runs "
        f"search after search. The rest is SQLite writes (Optuna's and MLflow's each epoch, "
        f"trial attributes), MLflow runs and the checkpoint. At that "
        # A fixed cost c per trial stays within target t once a bare fit takes c / (t - 1).
        f"cost a trial needs a bare fit of about {max(cost, 0) / (target - 1):.0f} s to "
        f"stay within {target}. End to end adds one-off costs (MLflow database, final "
        f"report, test scoring, model registry) that only short searches feel. Same curves "
        f"counts bare fits whose last validation accuracy equals the engine's: both sides "
        f"trained the same model.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """`python -m benchmarks.overhead [--quick] [--json PATH]`."""
    benchmark_main(__doc__, run, section, "one small round (about 40 s)")


if __name__ == "__main__":
    main()
