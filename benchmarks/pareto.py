"""Accuracy against latency on CIFAR-10: a multi-objective search against a
single-objective one at the same budget, compared by the hypervolume of their fronts.

    python -m benchmarks.pareto [--quick] [--json PATH] [--budget 55] [--seed 0]

Budgets are in T: one epoch of the tutorial CNN on the 45,000 CIFAR-10 training images,
measured at the start of the same run (`benchmarks.recipes.measure_t`). Two searches of
`budget` T each, one after the other, in this process, on the same 45k/5k/10k split
(space `auto`, SQLite, no MLflow, the same seed):

- `multi`: `automl.search(..., objectives="val_accuracy,latency_ms")`, multi-objective
  TPE with automl's Pareto pruning rule;
- `single`: the same search on val_accuracy alone; its complete trials are then filtered
  to their non-dominated (val accuracy, latency) set, as a user without `--objectives`
  would have to.

Every complete trial's latency is its `latency_ms` user attribute (the median of 15
one-example `predict_on_batch` calls, measured on this machine right after the model is
built). Each front is scored by its hypervolume in (1 - val_accuracy, latency_ms) space,
both minimized, against one reference point shared by the two runs: error 1.0 and 1.1x
the largest latency of any complete trial of either run. It is computed with Optuna's own
code (`optuna._hypervolume.compute_hypervolume`, private in Optuna 5.0, the function
`plot_hypervolume_history` uses), else with an exact 2-D sweep (`hypervolume_2d`);
the JSON says which. It is also given as a fraction of the reference box.

Test accuracy is the exported best model's only (`summary.json`): for `multi` the
front's most accurate member, for `single` its best model (possibly an ensemble or with
flip TTA, which the front's latencies do not include).

`--quick` is the smoke size (about two minutes): 2,000 training images, T measured on them
and scaled, and two searches of 1 T with at most 2 epochs a trial.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import recipes  # noqa: E402 - after quieting TensorFlow
from benchmarks.budget import search_cifar  # noqa: E402

OBJECTIVES = "val_accuracy,latency_ms"
QUICK_BUDGET = 3.0  # T of the slice; at 1 T a loaded machine had no room for one trial
QUICK_MAX_EPOCHS = 2
REFERENCE_LATENCY = 1.1  # times the largest latency of either run


@dataclasses.dataclass(frozen=True)
class Point:
    """One complete trial in (val accuracy, latency) terms."""

    trial: int
    val_accuracy: float
    latency_ms: float
    n_params: int | None
    params: dict[str, Any]
    epochs: int | None = None

    def row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def front(points: Sequence[Point]) -> list[Point]:
    """The non-dominated points (higher accuracy, lower latency), most accurate first.

    A point is dropped when another has no lower accuracy, no higher latency and is
    strictly better in one of them; of exact duplicates the lower trial number stays.
    """
    kept = []
    for p in points:
        dominated = any(
            q.val_accuracy >= p.val_accuracy
            and q.latency_ms <= p.latency_ms
            and (q.val_accuracy > p.val_accuracy or q.latency_ms < p.latency_ms)
            for q in points
        )
        duplicate = any(
            (q.val_accuracy, q.latency_ms) == (p.val_accuracy, p.latency_ms) and q.trial < p.trial
            for q in points
        )
        if not dominated and not duplicate:
            kept.append(p)
    return sorted(kept, key=lambda p: (-p.val_accuracy, p.latency_ms))


def hypervolume_2d(losses: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Exact area dominated by `losses` (both minimized) and bounded by `reference`:
    sweep along the first loss, adding each point's strip below the best second loss so
    far. Points outside the reference box add nothing."""
    area, best_second = 0.0, reference[1]
    inside = sorted(p for p in losses if p[0] <= reference[0] and p[1] <= reference[1])
    for i, (first, second) in enumerate(inside):
        best_second = min(best_second, second)
        next_first = inside[i + 1][0] if i + 1 < len(inside) else reference[0]
        area += (next_first - first) * (reference[1] - best_second)
    return area


def hypervolume(points: Sequence[Point], reference: tuple[float, float]) -> tuple[float, str]:
    """Hypervolume of `points` in (1 - val_accuracy, latency_ms) space, and the method:
    Optuna's `compute_hypervolume` when it imports, else the 2-D sweep."""
    import numpy as np

    losses = [(1.0 - p.val_accuracy, p.latency_ms) for p in points]
    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:  # a private module: it may move in a later Optuna
        return hypervolume_2d(losses, reference), "2-D sweep (benchmarks.pareto.hypervolume_2d)"
    array = np.asarray(losses, dtype=float).reshape(-1, 2)
    value = compute_hypervolume(array, np.asarray(reference, dtype=float))
    return float(value), "optuna._hypervolume.compute_hypervolume"


def complete_points(study: Any) -> list[Point]:
    """Every complete trial with its val accuracy (its first objective value) and its
    `latency_ms` user attribute (trials without one are left out)."""
    import optuna

    points = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        latency = t.user_attrs.get("latency_ms")
        if latency is None or t.values is None:
            continue
        points.append(
            Point(
                trial=t.number,
                val_accuracy=round(float(t.values[0]), 4),
                latency_ms=round(float(latency), 4),
                n_params=t.user_attrs.get("n_params"),
                params=dict(t.params),
                epochs=t.user_attrs.get("epochs"),
            )
        )
    return points


def pruned_reasons(study: Any) -> dict[str, int]:
    """How many pruned trials gave each reason (numbers replaced by N, so that alike
    reasons count together), most frequent first."""
    import re

    import optuna

    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)):
        reason = re.sub(r"\d+(\.\d+)?", "N", str(t.user_attrs.get("reason") or "(none)"))
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def run_search(
    budget_s: float, *, objectives: str | None, seed: int, data: Any, max_epochs: int | None
) -> tuple[dict[str, Any], list[Point]]:
    """One search of `budget_s` seconds, on CIFAR-10 as a user's `automl search cifar10`
    loads it, or on `data` (a loaded slice) when given; its figures and complete trials."""

    options: dict[str, Any] = {"objectives": objectives} if objectives else {}
    if max_epochs is not None:
        options["max_epochs"] = max_epochs
    result, wall = search_cifar(budget_s, seed, data, **options)
    summary = result.summary
    points = complete_points(result.study)
    accuracy = summary.get("test", {}).get("metrics", {}).get("accuracy")
    row = {
        "objectives": objectives or "val_accuracy",
        "wall_s": round(wall, 1),
        "budget_s": round(budget_s, 1),
        "trials": summary["trials"],
        "complete_trials": len(points),
        "best_test_accuracy": None if accuracy is None else round(float(accuracy), 4),
        "best_trial": (summary.get("best") or {}).get("trial"),
        "final": summary.get("final", {}).get("description"),
        "plan": summary.get("plan", {}).get("description"),
        "engine_front": [r["trial"] for r in summary.get("pareto_front", [])] or None,
        "pruned_reasons": pruned_reasons(result.study),
        "all": [p.row() for p in points],
    }
    return row, points


def compare(runs: dict[str, list[Point]]) -> dict[str, Any]:
    """Each run's front and its hypervolume against one shared reference point."""
    latencies = [p.latency_ms for points in runs.values() for p in points]
    reference = (1.0, REFERENCE_LATENCY * max(latencies, default=1.0))
    box = reference[0] * reference[1]
    out: dict[str, Any] = {"reference": [reference[0], round(reference[1], 4)]}
    for name, points in runs.items():
        members = front(points)
        value, method = hypervolume(members, reference)
        losses = [(1.0 - p.val_accuracy, p.latency_ms) for p in members]
        out[name] = {
            "front": [p.row() for p in members],
            "hypervolume": round(value, 6),
            "hypervolume_fraction": round(value / box, 4),
            "hypervolume_2d_sweep": round(hypervolume_2d(losses, reference), 6),  # a check
        }
        out["method"] = method
    if all(out[name]["hypervolume"] for name in runs) and len(runs) == 2:
        multi, single = (out[name]["hypervolume"] for name in runs)
        out["ratio_multi_to_single"] = round(multi / single, 4)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """T, then the two searches one after the other, then the comparison."""
    data, spec = recipes._load(quick=args.quick)
    t = recipes.measure_t(data, spec, quick=args.quick)
    budget = args.budget if args.budget is not None else (QUICK_BUDGET if args.quick else 55.0)
    max_epochs = QUICK_MAX_EPOCHS if args.quick else None
    result: dict[str, Any] = {
        "command": "python -m benchmarks.pareto " + " ".join(sys.argv[1:]),
        "quick": args.quick,
        "T_s": round(t, 1),
        "budget_T": budget,
        "train": len(data.x_train),
        "seed": args.seed,
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "runs": {},
    }
    recipes._progress(f"T = {t:.1f} s; {budget:g} T per search", result, args.json, "pareto")
    points: dict[str, list[Point]] = {}
    for name, objectives in (("multi", OBJECTIVES), ("single", None)):
        row, points[name] = run_search(
            budget * t,
            objectives=objectives,
            seed=args.seed,
            data=data if args.quick else None,
            max_epochs=max_epochs,
        )
        result["runs"][name] = row
        recipes._progress(
            f"{name}: {row['complete_trials']} complete trials, {row['wall_s']} s",
            result,
            args.json,
            "pareto",
        )
    result["comparison"] = compare(points)
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    return result


def _differing(members: Sequence[dict[str, Any]]) -> list[str]:
    """The parameter names whose values differ between front members (with `family`
    first when sampled), so that a table shows what sets them apart."""
    names = dict.fromkeys(k for m in members for k in m["params"])
    differ = [k for k in names if len({repr(m["params"].get(k)) for m in members}) > 1]
    return (["family"] if "family" in names and "family" not in differ else []) + differ


def _params(params: dict[str, Any], names: Sequence[str]) -> str:
    """A trial's parameters among `names`, short enough for a table cell."""
    shown = [(k, params[k]) for k in names if k in params]
    text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown)
    return text if len(text) <= 160 else text[:157] + "..."


def _states(trials: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in trials.items() if n or state == "complete")


def section(result: dict[str, Any]) -> str:
    """RESULTS.md section: the two runs side by side, then each front."""
    comparison = result["comparison"]
    runs = result["runs"]
    mode = "quick (2,000 training images, smoke only)" if result["quick"] else "45k/5k/10k split"
    names = {"multi": "multi-objective", "single": "single-objective, filtered"}

    def cell(name: str, key: str, fmt: str = "{}") -> str:
        value = runs[name].get(key)
        return "-" if value is None else fmt.format(value)

    def front_cell(name: str, pick: Any, fmt: str) -> str:
        members = comparison[name]["front"]
        return fmt.format(pick(members)) if members else "-"

    reference = comparison["reference"]
    lines = [
        "## Accuracy against latency: multi- and single-objective search (CIFAR-10)",
        "",
        f"`{result['command']}`; {mode}; {result['budget_T']:g} T per search, T = "
        f"{result['T_s']} s (one tutorial-CNN epoch on 45,000 images, this run); seed "
        f"{result['seed']}; 1-minute load average {result['load_average_at_start']} at the "
        f"start, {result.get('load_average_at_end', '?')} at the end. Hypervolume in "
        f"(1 - val accuracy, latency ms), reference point ({reference[0]:g}, "
        f"{reference[1]:.3f} ms) for both, by {comparison['method']}.",
        "",
        f"| | {names['multi']} | {names['single']} |",
        "|---|---|---|",
        f"| objectives | `{runs['multi']['objectives']}` | `{runs['single']['objectives']}` |",
        f"| complete trials | {cell('multi', 'complete_trials')} | "
        f"{cell('single', 'complete_trials')} |",
        f"| trials by state | {_states(runs['multi']['trials'])} | "
        f"{_states(runs['single']['trials'])} |",
        f"| front size | {len(comparison['multi']['front'])} | "
        f"{len(comparison['single']['front'])} |",
        f"| **hypervolume** (fraction of the box) | **{comparison['multi']['hypervolume']:.4g}** "
        f"({comparison['multi']['hypervolume_fraction']:.4f}) | "
        f"**{comparison['single']['hypervolume']:.4g}** "
        f"({comparison['single']['hypervolume_fraction']:.4f}) |",
        f"| front's best val accuracy | "
        f"{front_cell('multi', lambda m: max(p['val_accuracy'] for p in m), '{:.4f}')} | "
        f"{front_cell('single', lambda m: max(p['val_accuracy'] for p in m), '{:.4f}')} |",
        f"| front's lowest latency (ms) | "
        f"{front_cell('multi', lambda m: min(p['latency_ms'] for p in m), '{:.3f}')} | "
        f"{front_cell('single', lambda m: min(p['latency_ms'] for p in m), '{:.3f}')} |",
        f"| best model's test accuracy | {cell('multi', 'best_test_accuracy', '{:.4f}')} | "
        f"{cell('single', 'best_test_accuracy', '{:.4f}')} |",
        f"| wall s (budget s) | {runs['multi']['wall_s']:.0f} ({runs['multi']['budget_s']:.0f}) "
        f"| {runs['single']['wall_s']:.0f} ({runs['single']['budget_s']:.0f}) |",
    ]
    if "ratio_multi_to_single" in comparison:
        lines += [
            "",
            f"Hypervolume ratio, multi / single: **{comparison['ratio_multi_to_single']:.3f}**.",
        ]
    for name in ("multi", "single"):
        reasons = runs[name].get("pruned_reasons")
        if reasons:
            told = "; ".join(f"{n} x {reason}" for reason, n in reasons.items())
            lines += ["", f"Pruned in the {names[name]} search, by reason: {told}"]
    for name in ("multi", "single"):
        lines += [
            "",
            f"Front of the {names[name]} search:",
            "",
            "| trial | val accuracy | latency ms | parameters | epochs "
            "| params (where they differ) |",
            "|---|---|---|---|---|---|",
        ]
        differing = _differing(comparison[name]["front"])
        for p in comparison[name]["front"]:
            n_params = "-" if p["n_params"] is None else f"{p['n_params']:,}"
            lines.append(
                f"| {p['trial']} | {p['val_accuracy']:.4f} | {p['latency_ms']:.3f} | {n_params} "
                f"| {p.get('epochs') or '-'} | {_params(p['params'], differing)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (about a minute)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument(
        "--budget",
        type=float,
        help=f"budget per search in T (default 55; {QUICK_BUDGET} with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0, help="both searches' seed (default 0)")
    args = parser.parse_args()
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be > 0 (in T). Received: --budget={args.budget:g}.")
    result = run(args)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    print(section(result))


if __name__ == "__main__":
    main()
