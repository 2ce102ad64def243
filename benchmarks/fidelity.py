"""Fidelities: do cheap trainings rank configurations the way full training does?

    python -m benchmarks.fidelity [--quick] [--json PATH]

Issue #14 keeps a low fidelity only where it ranks configurations like full training.
For each dataset, the configurations are the space's starting points, then K points
drawn at random (Optuna's `RandomSampler`, seed 0) from a built-in space: `cnn` for
CIFAR-10, `mlp` for the `digits` table. Each is built and trained with the engine's own
code (`build_model`, `HyperParameters` over a `FixedTrial` of its params, `fit_trial`
with the engine's callbacks and early-stopping patience), with the same seed at every
fidelity, so the models are the ones a search trains. Scores are the study's metric on
the validation rows, best epoch (a trial's value).

Fidelities, against `full` (all the benchmark's training rows for E epochs):

- `epoch k of full`: the full run's score after epoch k (k = 1 and ceil(E/3)); its
  schedule decays over E epochs, so this is what a pruner's rung sees;
- `planned k`: a run planned for k epochs, its learning-rate schedule decayed over them
  (what the engine trains when only k epochs fit);
- `subset 25 %`: a stratified quarter of the training rows (`--subset 0.25`, the
  engine's `subset_indices`), E epochs, schedule over its own steps;
- `16x16` (images only): the images downsampled 2x2 (area average), the model built for
  16x16 inputs (patch whitening fitted to the small images), E epochs.

Reported per fidelity: Spearman's rho against full, how good its top pick is at full
fidelity, and its cost as a fraction of full (seconds measured: building, tracing,
training and validation). A fidelity is kept where rho >= 0.7 (see `KEEP_RHO`).

A random CIFAR-10 point that would cost more than the costliest starting point (an eager
forward pass, scaled to the run) is drawn again, at most `MAX_DRAWS` times K: the search
never trains such a point in exploration either. `--quick` is the smoke size (`digits`
only, about a minute); the full run adds CIFAR-10 on a fixed stratified slice.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import benchmark_main  # noqa: E402 - after quieting TensorFlow

# Spearman's rho of 0.7 is the usual bar for a strong rank correlation, and with 9-12
# configurations it is about where a correlation stops being chance (one-sided p of
# about 0.02 at n = 9, 0.006 at n = 12).
KEEP_RHO = 0.7
SUBSET = 0.25
LOW_SIDE = 16
MAX_DRAWS = 4
SEED = 0
# The shared CIFAR-10 copy, where `AUTOML_DATA_DIR` does not name one (as `recipes`).
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One dataset's part of the benchmark.

    Attributes:
        dataset: A built-in dataset name.
        space: A built-in space name.
        random: Points drawn at random, besides the starting points.
        epochs: E, the full fidelity's epochs.
        train_rows: A fixed stratified slice of the training split, or None for all.
        val_rows: The same for the validation split.
        low_res: Also train on images downsampled to this side (images only).
    """

    dataset: str
    space: str
    random: int
    epochs: int
    train_rows: int | None = None
    val_rows: int | None = None
    low_res: int | None = None


TABLE_QUICK = Setting("digits", "mlp", random=5, epochs=10)
TABLE_FULL = Setting("digits", "mlp", random=12, epochs=20)
CIFAR_FULL = Setting(
    "cifar10", "cnn", random=7, epochs=4, train_rows=10_000, val_rows=2000, low_res=LOW_SIDE
)


def short_epochs(epochs: int) -> list[int]:
    """The low epoch fidelities: 1 and ceil(E/3), below E."""
    return sorted({k for k in (1, math.ceil(epochs / 3)) if k < epochs})


def _take(x: Any, rows: Any) -> Any:
    """Rows of an array, or of every column of a dict of arrays."""
    if isinstance(x, dict):
        return {key: column[rows] for key, column in x.items()}
    return x[rows]


def load(setting: Setting) -> Any:
    """The dataset, cut to the setting's fixed stratified slices."""
    import numpy as np

    from automl.data import load_dataset
    from automl.engine._fidelity import subset_indices

    local = DATA_DIR.exists() and not os.environ.get("AUTOML_DATA_DIR")
    data = load_dataset(setting.dataset, data_dir=DATA_DIR if local else None, seed=SEED)
    cuts: dict[str, Any] = {}
    for part, rows in (("train", setting.train_rows), ("val", setting.val_rows)):
        y = getattr(data, f"y_{part}")
        if rows is not None and rows < len(y):
            taken = subset_indices(np.asarray(y), rows / len(y), SEED, stratify=True)
            cuts[f"x_{part}"] = _take(getattr(data, f"x_{part}"), taken)
            cuts[f"y_{part}"] = y[taken]
    return dataclasses.replace(data, **cuts) if cuts else data


def downsampled(data: Any, side: int) -> Any:
    """The images averaged over blocks down to `side` x `side` pixels (uint8)."""
    import numpy as np

    def shrink(x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        blocks = x.reshape(n, side, h // side, side, w // side, c).astype(np.float32)
        return blocks.mean(axis=(2, 4)).round().astype(np.uint8)

    return dataclasses.replace(
        data, x_train=shrink(data.x_train), x_val=shrink(data.x_val), x_test=shrink(data.x_test)
    )


@dataclasses.dataclass
class Bench:
    """What every training of one dataset shares."""

    data: Any
    space: Any
    spec: Any
    objective: Any
    epochs: int


def make_bench(data: Any, space_name: str, epochs: int) -> Bench:
    """The space, spec (as a search makes it) and objective for `data`."""
    from automl.engine._setup import model_spec
    from automl.objective import Objective
    from search_spaces import resolve_space

    objective = Objective.for_task(data.task)
    spec = model_spec(data, data.encode(None), epochs)
    spec = dataclasses.replace(spec, metric=objective.metric)
    return Bench(data, resolve_space(space_name), spec, objective, epochs)


def build(bench: Bench, params: dict[str, Any], spec: Any, seed: int) -> tuple[Any, Any]:
    """The space's model for `params` on `spec`, after the engine's reset and seed."""
    import keras
    import optuna

    from automl.engine._trainer import build_model
    from automl.spaces import HyperParameters

    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    hp = HyperParameters(optuna.trial.FixedTrial(params), bench.space.overrides)
    return build_model(bench.space, hp, spec, bench.objective), hp


def train(
    bench: Bench, params: dict[str, Any], seed: int, *, epochs: int, rows: Any = None
) -> dict[str, Any]:
    """One training as a trial runs it: its value, per-epoch best-so-far and seconds.

    `epochs` is the run's plan (its schedule decays over them); `rows` the training rows
    (a subset trial's spec counts only them). A run that diverges scores None.
    """
    import optuna

    from automl._errors import TrialFailed
    from automl.engine._trainer import FitPlan, batch_size_of, fit_trial

    started = time.perf_counter()
    n_train = bench.spec.n_train if rows is None else len(rows)
    spec = dataclasses.replace(bench.spec, max_epochs=epochs, n_train=n_train)
    model, hp = build(bench, params, spec, seed)
    encoded = bench.data.encode(hp)
    x, y = encoded.x_train, bench.data.y_train
    if rows is not None:
        x, y = _take(x, rows), y[rows]
    ends: list[tuple[float, float]] = []  # (seconds since start, monitored value)

    def report(epoch: int, logs: dict[str, float]) -> None:
        value = logs.get(bench.objective.monitor, math.nan)
        ends.append((time.perf_counter() - started, value))

    plan = FitPlan(
        batch_size=batch_size_of(hp),
        max_epochs=epochs,
        patience=max(3, bench.epochs // 5),  # the engine's default for E epochs
        objective=bench.objective,
        silent=True,
        callbacks=tuple(hp.callbacks),
    )
    trial = optuna.trial.FixedTrial(params)
    try:
        outcome = fit_trial(
            trial, model, (x, y), (encoded.x_val, bench.data.y_val), plan, report=report
        )
        value: float | None = outcome.value
    except (TrialFailed, optuna.TrialPruned):
        value = None
    return {
        "value": value,
        "seconds": round(time.perf_counter() - started, 2),
        "curve": [_best_so_far(bench, [v for _, v in ends[: i + 1]]) for i in range(len(ends))],
        "ends_s": [round(s, 2) for s, _ in ends],
    }


def _best_so_far(bench: Bench, values: list[float]) -> float | None:
    """What a trial stopped after these epochs returns (the best one), or None."""
    finite = [v for v in values if math.isfinite(v)]
    return bench.objective.best(finite)[0] if finite else None


def configurations(bench: Bench, random: int) -> tuple[list[dict[str, Any]], int]:
    """The starting points, then `random` points drawn at random from the space.

    The points run through one study with a seeded `RandomSampler`, as a search's
    first trials do (a starting point's missing parameters are sampled). For images, a
    random point estimated to cost more than the costliest starting point is drawn
    again (at most `MAX_DRAWS` x `random` draws).

    Returns:
        Each configuration's `{"origin", "params"}`, and how many draws were too costly.
    """
    import optuna

    from automl.spaces import HyperParameters

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SEED))
    starts = bench.space.starting_points(bench.spec)
    for point in starts:
        study.enqueue_trial(point)
    found: list[dict[str, Any]] = []
    limit = math.inf  # the costliest starting point's estimate (images only)
    too_costly = 0
    for draw in range(len(starts) + MAX_DRAWS * random):
        if len(found) == len(starts) + random:
            break
        trial = study.ask()
        hp = HyperParameters(trial, bench.space.overrides)
        model, _ = _built_for(bench, hp)
        cost = _cost_estimate(bench, model, hp) if bench.spec.kind == "image" else 0.0
        study.tell(trial, 0.0)
        if draw < len(starts):
            limit = cost if draw == 0 else max(limit, cost)
        elif cost > limit:
            too_costly += 1
            continue
        origin = "start" if draw < len(starts) else "random"
        found.append({"origin": origin, "params": dict(trial.params)})
    return found, too_costly


def _built_for(bench: Bench, hp: Any) -> tuple[Any, Any]:
    """The model a live trial's `hp` samples (define-by-run), after a reset."""
    import keras

    from automl.engine._trainer import build_model

    keras.utils.clear_session(free_memory=False)
    return build_model(bench.space, hp, bench.spec, bench.objective), hp


def _cost_estimate(bench: Bench, model: Any, hp: Any) -> float:
    """Seconds of a full-fidelity run, from one eager forward pass of a batch (a
    training step costs about three; the plan's `forward_seconds`)."""
    from automl.engine._timing import forward_seconds
    from automl.engine._trainer import batch_size_of

    batch = batch_size_of(hp)
    forward_s = forward_seconds(model, bench.data.x_train[:batch])
    return 3 * forward_s * bench.spec.steps_per_epoch(batch) * bench.epochs


def measure(bench: Bench, config: dict[str, Any], seed: int, low: Bench | None) -> dict:
    """Every fidelity of one configuration: its score and its seconds.

    `low` is the same bench on downsampled images, or None.
    """
    import numpy as np

    from automl.engine._fidelity import subset_indices

    params, epochs = config["params"], bench.epochs
    full = train(bench, params, seed, epochs=epochs)
    scores: dict[str, float | None] = {"full": full["value"]}
    seconds: dict[str, float] = {"full": full["seconds"]}
    for k in short_epochs(epochs):
        if len(full["curve"]) >= k:  # early stopping may have ended the run sooner
            scores[f"epoch {k} of full"] = full["curve"][k - 1]
            seconds[f"epoch {k} of full"] = full["ends_s"][k - 1]
        else:
            scores[f"epoch {k} of full"] = full["value"]
            seconds[f"epoch {k} of full"] = full["seconds"]
        planned = train(bench, params, seed, epochs=k)
        scores[f"planned {k}"], seconds[f"planned {k}"] = planned["value"], planned["seconds"]
    rows = subset_indices(np.asarray(bench.data.y_train), SUBSET, SEED, stratify=True)
    subset = train(bench, params, seed, epochs=epochs, rows=rows)
    name = f"subset {SUBSET:.0%}"
    scores[name], seconds[name] = subset["value"], subset["seconds"]
    if low is not None:
        small = train(low, params, seed, epochs=epochs)
        name = f"{LOW_SIDE}x{LOW_SIDE}"
        scores[name], seconds[name] = small["value"], small["seconds"]
    return {**config, "seed": seed, "scores": scores, "seconds": seconds, "curve": full["curve"]}


def rank_table(configs: list[dict[str, Any]], maximize: bool) -> dict[str, dict[str, Any]]:
    """Per low fidelity: Spearman's rho against full, its top pick, cost and verdict.

    A run that diverged (None) ranks below every run that did not, at that fidelity.
    """
    from scipy.stats import spearmanr

    def column(name: str) -> list[float]:
        values = [c["scores"][name] for c in configs]
        finite = [v for v in values if v is not None]
        worst = (min(finite) - 1 if maximize else max(finite) + 1) if finite else 0.0
        return [worst if v is None else v for v in values]

    full = column("full")
    best_full = max(full) if maximize else min(full)
    full_s = sum(c["seconds"]["full"] for c in configs)
    table = {}
    for name in configs[0]["scores"]:
        if name == "full":
            continue
        low = column(name)
        rho = float(spearmanr(full, low).statistic) if len(set(low)) > 1 else math.nan
        interval = bootstrap_interval(full, low)
        pick = low.index(max(low) if maximize else min(low))
        table[name] = {
            "rho": round(rho, 3),
            "rho_interval": [round(v, 3) for v in interval],
            "top_pick": pick,
            "top_pick_full": round(full[pick], 4),
            "regret": round(abs(best_full - full[pick]), 4),
            "cost": round(sum(c["seconds"][name] for c in configs) / full_s, 3),
            "failed": sum(c["scores"][name] is None for c in configs),
            "verdict": "keep" if rho >= KEEP_RHO else "drop",
        }
    return table


def bootstrap_interval(full: list[float], low: list[float]) -> tuple[float, float]:
    """The 5th and 95th percentiles of Spearman's rho over configurations resampled
    with replacement (2,000 seeded draws; draws with a constant column are skipped)."""
    import numpy as np
    from scipy.stats import spearmanr

    rng = np.random.default_rng(SEED)
    a, b, rhos = np.asarray(full), np.asarray(low), []
    for _ in range(2000):
        take = rng.integers(0, len(a), len(a))
        if len(set(a[take])) > 1 and len(set(b[take])) > 1:
            rhos.append(spearmanr(a[take], b[take]).statistic)
    if not rhos:
        return math.nan, math.nan
    low_end, high_end = np.percentile(rhos, [5, 95])
    return float(low_end), float(high_end)


def run_setting(setting: Setting) -> dict[str, Any]:
    """One dataset: its configurations at every fidelity, and the rank table."""
    import sys

    started = time.perf_counter()
    data = load(setting)
    bench = make_bench(data, setting.space, setting.epochs)
    low = None
    if setting.low_res and bench.spec.kind == "image":
        low = make_bench(downsampled(data, setting.low_res), setting.space, setting.epochs)
    _warm_up(bench)
    configs, too_costly = configurations(bench, setting.random)
    measured = []
    for i, config in enumerate(configs):
        measured.append(measure(bench, config, seed=1000 + i, low=low))
        scores = {k: v if v is None else round(v, 3) for k, v in measured[-1]["scores"].items()}
        print(f"fidelity: {setting.dataset} {i + 1}/{len(configs)} {scores}", file=sys.stderr)
    maximize = bench.objective.direction == "maximize"
    return {
        **dataclasses.asdict(setting),
        "metric": bench.objective.metric,
        "train_rows_used": len(data.y_train),
        "val_rows_used": len(data.y_val),
        "starts": sum(c["origin"] == "start" for c in configs),
        "too_costly": too_costly,
        "fidelities": rank_table(measured, maximize),
        "full_scores": [c["scores"]["full"] for c in measured],
        "configs": measured,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _warm_up(bench: Bench) -> None:
    """Load TensorFlow's kernels before the first timed training, so that no
    configuration pays it."""
    import keras

    x, y = bench.data.encode(None).x_train[:64], bench.data.y_train[:64]
    layers = [keras.layers.Conv2D(8, 3)] if bench.spec.kind == "image" else []
    model = keras.Sequential(
        [keras.Input(bench.spec.input_shape), *layers, keras.layers.Flatten()]
        + [keras.layers.Dense(bench.spec.output_units, activation="softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0)


def run(quick: bool) -> dict[str, Any]:
    """The table (and CIFAR-10 unless `quick`); the load average around it."""
    load_start = [round(v, 2) for v in os.getloadavg()]
    started = time.perf_counter()
    settings = [TABLE_QUICK] if quick else [CIFAR_FULL, TABLE_FULL]
    datasets = [run_setting(setting) for setting in settings]
    return {
        "quick": quick,
        "keep_rho": KEEP_RHO,
        "datasets": datasets,
        "load_average_start": load_start,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def section(result: dict[str, Any]) -> str:
    """RESULTS.md section: per dataset, a row per low fidelity, then what it means."""
    mode = "quick" if result["quick"] else "full"
    lines = [
        "## Fidelities: do cheap trainings rank configurations like full training?",
        "",
        f"`python -m benchmarks.fidelity{' --quick' if result['quick'] else ''}` ({mode} "
        f"mode, {result['wall_s']:.0f} s; load average {_load(result['load_average_start'])} "
        f"at the start, {_load(result['load_average_end'])} at the end). Spearman's rho "
        "between each low fidelity's scores and full training's, over the same "
        "configurations; 'top pick' is the configuration a fidelity ranks first, scored at "
        "full fidelity (regret: how far below the best full score); cost is the "
        "fidelity's measured seconds over full training's (building, tracing, training, "
        f"validation). Keep where rho >= {result['keep_rho']}: the usual bar for a strong "
        "rank correlation, and at 9-12 configurations about where it stops being chance "
        "(one-sided p about 0.02 at n = 9). The interval is the 5th to 95th percentile of "
        "rho over configurations resampled with replacement: with this few, it is wide.",
    ]
    for data in result["datasets"]:
        lines += ["", *_dataset_lines(data)]
    return "\n".join(lines) + "\n"


def _interval(row: dict[str, Any]) -> str:
    low, high = row.get("rho_interval", (math.nan, math.nan))
    return f"{low:.2f} to {high:.2f}"


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _dataset_lines(data: dict[str, Any]) -> list[str]:
    """One dataset's sizes, table and verdicts."""
    n, starts = len(data["full_scores"]), data["starts"]
    scores = [s for s in data["full_scores"] if s is not None]
    costly = f", {data['too_costly']} more drawn and skipped as too costly" * bool(
        data["too_costly"]
    )
    lines = [
        f"### {data['dataset']} (`{data['space']}` space)",
        "",
        f"{n} configurations ({starts} starting points, {n - starts} random{costly}); "
        f"{data['train_rows_used']:,} training and {data['val_rows_used']:,} validation "
        f"rows (fixed, stratified); full fidelity E = {data['epochs']} epochs; validation "
        f"{data['metric']} at full fidelity from {min(scores):.3f} to {max(scores):.3f} "
        f"(median {statistics.median(scores):.3f}); {data['wall_s']:.0f} s in all.",
        "",
        "| fidelity | Spearman rho (90 % interval) | top pick at full (regret) | cost / full "
        "| verdict |",
        "|---|---|---|---|---|",
    ]
    for name, row in data["fidelities"].items():
        failed = f", {row['failed']} diverged" * bool(row["failed"])
        lines.append(
            f"| {_label(name, data['epochs'])}{failed} | {row['rho']:.2f} ({_interval(row)}) | "
            f"{row['top_pick_full']:.3f} ({row['regret']:.3f}) | {row['cost']:.2f} | "
            f"{row['verdict']} |"
        )
    kept = [n for n, r in data["fidelities"].items() if r["verdict"] == "keep"]
    cheapest = min(kept, key=lambda n: data["fidelities"][n]["cost"]) if kept else None
    lines += [
        "",
        f"Kept on {data['dataset']}: "
        + (", ".join(kept) + f"; the cheapest of them is {cheapest}." if kept else "none."),
    ]
    return lines


def _label(name: str, epochs: int) -> str:
    """The table's words for a fidelity."""
    if name.startswith("epoch "):
        return f"{name} run (schedule over {epochs} epochs)"
    if name.startswith("planned "):
        return f"run planned for {name.split()[1]} epoch(s) (schedule over them)"
    if name.startswith("subset"):
        return f"{name} of the training rows, {epochs} epochs"
    return f"{name} images, {epochs} epochs"


def main() -> None:
    """`python -m benchmarks.fidelity [--quick] [--json PATH]`."""
    benchmark_main(__doc__, run, section, "digits only, about a minute")


if __name__ == "__main__":
    main()
