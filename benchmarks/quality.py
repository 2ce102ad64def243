"""Search quality at equal budget: automl against keras-tuner, a plain Optuna loop and
AutoKeras, on the same split, the same space and the same wall-clock budget.

    python -m benchmarks.quality [--quick] [--json results.json]
    python -m benchmarks.quality --one kt_hyperband --dataset digits --seed 0 --budget 30
    python -m benchmarks.quality --datasets digits,breast_cancer \
        --contenders automl,optuna_loop,kt_hyperband,hgb

Datasets: digits and breast_cancer (scikit-learn's bundled sets; `mlp` space) and, in
full mode, CIFAR-10 from ../shared/data (`cnn` space; a fixed 10,000-image training
subset so that several trials fit the budget on 2 cores; the whole 10,000-image test
set). The split is fixed (seed 0); `--seed` seeds the searchers. Every run is its own
process, so no contender inherits another's TensorFlow state; data loading and the
TensorFlow import happen before the clock starts. On tables, scikit-learn's
HistGradientBoosting with its defaults (`hgb`, the search's own yardstick,
`automl.baseline`) stands beside them: what many users would pick instead.
`--datasets` and `--contenders` run a part of the full mode.

Per dataset, a tutorial model trained alone sets the bar: the Keras tutorial CNN for
10 epochs on CIFAR-10 (the searches cap trials at 6, automl's default there), a
two-layer ReLU MLP elsewhere. "Time to reach" is when a
contender's first epoch scored at least the tutorial's best validation accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CONTENDERS = {
    "automl": "`automl.search` (TPE + Hyperband pruner, MLflow on)",
    "optuna_loop": "plain Optuna loop (TPE, no pruning)",
    "kt_hyperband": "keras-tuner `Hyperband`",
    "kt_random": "keras-tuner `RandomSearch`",
    "kt_bayesian": "keras-tuner `BayesianOptimization`",
    "autokeras": "AutoKeras (`ImageClassifier` / `StructuredDataClassifier`, its own space)",
    "hgb": "scikit-learn `HistGradientBoostingClassifier` (defaults; tables only)",
}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One dataset's benchmark settings."""

    space: str
    max_epochs: int
    budget_s: dict[str, float]  # mode -> seconds per contender
    seeds: dict[str, int]  # mode -> number of seeds
    train_subset: int | None = None
    val_subset: int | None = None
    reference_epochs: int | None = None  # the tutorial's own count; None: max_epochs


DATASETS = {
    "digits": Setting("mlp", 40, {"quick": 10, "full": 20}, {"quick": 1, "full": 3}),
    "breast_cancer": Setting("mlp", 40, {"quick": 10, "full": 10}, {"quick": 1, "full": 3}),
    # 6 epochs a trial, automl's own cap for cifar10; the tutorial CNN trains its 10.
    "cifar10": Setting("cnn", 6, {"full": 240}, {"full": 1}, 10_000, 2_500, 10),
}


def load(name: str) -> Any:
    """The fixed split of `name` (seed 0), cut to the setting's subsets."""
    from automl.data import load_dataset

    setting = DATASETS[name]
    data_dir = os.environ.get("AUTOML_DATA_DIR") or Path(__file__).parents[2] / "shared/data"
    data = load_dataset(name, data_dir=Path(data_dir), seed=0)
    cut = {}
    if setting.train_subset:
        cut.update(x_train=data.x_train[: setting.train_subset])
        cut.update(y_train=data.y_train[: setting.train_subset])
    if setting.val_subset:
        cut.update(x_val=data.x_val[: setting.val_subset], y_val=data.y_val[: setting.val_subset])
    return dataclasses.replace(data, **cut)


def run_one(contender: str, dataset: str, seed: int, budget_s: float) -> dict[str, Any]:
    """One contender (or "reference") on one dataset, in this process."""
    import importlib

    from automl.engine._setup import model_spec
    from benchmarks import _contenders as c

    setting = DATASETS[dataset]
    data = load(dataset)
    spec = model_spec(data, data.encode(None), setting.max_epochs)
    build = importlib.import_module(f"search_spaces.{setting.space}").build
    patience = max(3, setting.max_epochs // 5)  # the engine's default
    if contender == "reference":
        if setting.space == "cnn":
            from search_spaces.cnn import BASELINE as params
        else:
            params = c.TUTORIAL_MLP
        epochs = setting.reference_epochs or setting.max_epochs
        return c.run_reference(data, spec, build, params, epochs, seed)
    if contender == "hgb":
        return c.run_yardstick(data)
    if contender == "automl":
        return c.run_automl(data, spec, setting.space, budget_s, seed, patience)
    if contender == "optuna_loop":
        return c.run_optuna_loop(data, spec, build, budget_s, seed, patience)
    if contender == "autokeras":
        return c.run_autokeras(data, spec, budget_s, seed, patience)
    tuner = {"kt_hyperband": "Hyperband", "kt_random": "RandomSearch"}.get(
        contender, "BayesianOptimization"
    )
    return c.run_keras_tuner(data, spec, build, tuner, budget_s, seed, patience)


def _spawn(contender: str, dataset: str, seed: int, budget_s: float) -> dict[str, Any]:
    """`run_one` in a fresh process; a failure is recorded, not raised."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "one.json"
        command = [sys.executable, "-m", "benchmarks.quality", "--one", contender]
        command += ["--dataset", dataset, "--seed", str(seed), "--budget", str(budget_s)]
        done = subprocess.run(
            [*command, "--json", str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "AUTOML_RECYCLE_MB": "0", "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        if done.returncode != 0 or not out.exists():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            return {"error": lines[-1] if lines else f"exit code {done.returncode}"}
        return json.loads(out.read_text())


def reach_time(timeline: list[list[float]], bar: float) -> float | None:
    """Seconds until the first epoch at or above `bar`, or None."""
    return next((t for t, value in timeline if value >= bar), None)


def run(
    quick: bool, datasets: list[str] | None = None, only: list[str] | None = None
) -> dict[str, Any]:
    """Every contender (or those in `only`) on every dataset of the mode (or those in
    `datasets`), seeds interleaved; `hgb` on tables only."""
    import importlib.util

    mode = "quick" if quick else "full"
    names = [name for name in CONTENDERS if name != "autokeras" and name in (only or CONTENDERS)]
    autokeras = importlib.util.find_spec("autokeras") is not None
    if autokeras and "autokeras" in (only or CONTENDERS):
        names.append("autokeras")
    result: dict[str, Any] = {"mode": mode, "autokeras_installed": autokeras, "datasets": {}}
    for dataset, setting in DATASETS.items():
        if mode not in setting.budget_s or dataset not in (datasets or DATASETS):
            continue
        budget = setting.budget_s[mode]
        reference = _spawn("reference", dataset, 0, budget)
        contenders = [n for n in names if n != "hgb" or setting.space != "cnn"]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        for seed in range(setting.seeds[mode]):
            for name in contenders:  # interleaved, so drift on the machine hits all alike
                runs[name].append({"seed": seed, **_spawn(name, dataset, seed, budget)})
                print(f"quality: {dataset} {name} seed {seed} done", file=sys.stderr)
        result["datasets"][dataset] = {
            "space": setting.space,
            "max_epochs": setting.max_epochs,
            "budget_s": budget,
            "seeds": setting.seeds[mode],
            "train_subset": setting.train_subset,
            "val_subset": setting.val_subset,
            "reference": reference,
            "contenders": {name: summarize(rs, reference) for name, rs in runs.items()},
        }
    return result


def summarize(runs: list[dict[str, Any]], reference: dict[str, Any]) -> dict[str, Any]:
    """Median and spread over seeds; failed runs are counted and kept."""
    good = [r for r in runs if "error" not in r and r.get("test_accuracy") is not None]
    bar = reference.get("best_val_accuracy")
    reached = [reach_time(r["timeline"], bar) for r in good] if bar is not None else []
    times = [t for t in reached if t is not None]
    tests = [r["test_accuracy"] for r in good]

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 4) if values else None

    return {
        "runs": runs,
        "failed": len(runs) - len(good),
        "errors": sorted({r["error"] for r in runs if "error" in r}),
        "test_accuracy_median": median(tests),
        "test_accuracy_min": min(tests, default=None),
        "test_accuracy_max": max(tests, default=None),
        "best_val_accuracy_median": median([r["best_val_accuracy"] for r in good]),
        "reached": f"{len(times)}/{len(good)}",
        "reach_s_median": median(times),
        "trials_median": median([r["trials"] for r in good]),
        "epochs_median": median([r["epochs"] for r in good]),
        "wall_s_median": median([r["wall_s"] for r in good]),
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def section(result: dict[str, Any]) -> str:
    """Markdown: one table per dataset, then what the numbers say."""
    lines = ["## Search quality at equal budget", ""]
    if not result["autokeras_installed"]:
        lines += ["AutoKeras is not installed here (`pip install autokeras`), so it is absent.", ""]
    verdicts = []
    for dataset, block in result["datasets"].items():
        reference = block["reference"]
        bar = reference.get("best_val_accuracy")
        subset = ""
        if block["train_subset"]:
            subset = (
                f"; training subset {block['train_subset']} images, validation "
                f"{block['val_subset']}, full test set"
            )
        lines += [
            f"### {dataset}: space `{block['space']}`, {block['budget_s']:g} s per contender, "
            f"{block['seeds']} seed(s), at most {block['max_epochs']} epochs per trial{subset}",
            "",
            f"Tutorial model alone: validation accuracy {_fmt(bar)}, test accuracy "
            f"{_fmt(reference.get('test_accuracy'))} ({reference.get('epochs', '?')} epochs, "
            f"{_fmt(reference.get('wall_s'), 1)} s). {reference.get('error', '')}",
            "",
            "| contender | test accuracy, median (min-max) | best val accuracy | "
            "reached tutorial val accuracy | time to reach (s, median) | trials | epochs | "
            "failed runs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        ranked = sorted(
            block["contenders"].items(), key=lambda kv: -(kv[1]["test_accuracy_median"] or -1)
        )
        for name, row in ranked:
            spread = f"{_fmt(row['test_accuracy_min'])}-{_fmt(row['test_accuracy_max'])}"
            failed = str(row["failed"]) + (
                f" ({'; '.join(row['errors'])[:160]})" if row["errors"] else ""
            )
            lines.append(
                f"| {CONTENDERS[name]} | **{_fmt(row['test_accuracy_median'])}** ({spread}) | "
                f"{_fmt(row['best_val_accuracy_median'])} | {row['reached']} | "
                f"{_fmt(row['reach_s_median'], 1)} | {_fmt(row['trials_median'], 0)} | "
                f"{_fmt(row['epochs_median'], 0)} | {failed} |"
            )
        lines.append("")
        ours = block["contenders"]["automl"]["test_accuracy_median"]
        others = [
            (row["test_accuracy_median"], name)
            for name, row in block["contenders"].items()
            if name != "automl" and row["test_accuracy_median"] is not None
        ]
        if ours is not None and others:
            best_other, who = max(others)
            verdicts.append(
                f"on {dataset} automl's median test accuracy is {ours:.3f} against "
                f"{best_other:.3f} for the best alternative ({CONTENDERS[who]}), a ratio of "
                f"{ours / best_other:.3f}"
            )
    if verdicts:
        lines += ["What it means: " + "; ".join(verdicts) + ".", ""]
    return "\n".join(lines)


def _names(text: str | None, known: dict[str, Any]) -> list[str] | None:
    """A comma-separated list of known names, or None (all)."""
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        sys.exit(f"quality: unknown {', '.join(unknown)}; pick from {', '.join(known)}")
    return names


def main() -> None:
    """Run every contender (or `--one` of them) and print the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small budgets, no CIFAR-10")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--one", choices=[*CONTENDERS, "reference"], help="one run, in-process")
    parser.add_argument("--dataset", choices=list(DATASETS), default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds")
    parser.add_argument("--datasets", help="comma-separated; default: every one of the mode")
    parser.add_argument("--contenders", help=f"comma-separated of {', '.join(CONTENDERS)}")
    args = parser.parse_args()
    datasets, only = _names(args.datasets, DATASETS), _names(args.contenders, CONTENDERS)
    if args.one:
        result = run_one(args.one, args.dataset, args.seed, args.budget)
        text = json.dumps({k: v for k, v in result.items() if k != "timeline"})
    else:
        result = run(args.quick, datasets, only)
        text = section(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(text)
    failed = [
        f"{dataset} {name}: {error}"
        for dataset, block in result.get("datasets", {}).items()
        for name, row in block["contenders"].items()
        for error in row["errors"]
    ]
    if failed:  # the figures are written; the runner reports this as a failure
        sys.exit("quality: failed runs: " + "; ".join(failed))


if __name__ == "__main__":
    main()
