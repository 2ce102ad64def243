"""The `automl` command: argument parsing and printing only.

Every heavy import (TensorFlow, Optuna, MLflow) happens inside the command that needs it,
so `automl --help`, `automl datasets`, `automl spaces` and argument errors answer fast.
A `UsageError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from automl import __version__, settings
from automl._errors import UsageError
from automl.config import DEFAULT_TRIALS, PRUNERS, SAMPLERS, TASKS, SearchConfig
from automl.objective import METRICS
from automl.settings import DEFAULT_STORAGE, DEFAULT_TRACKING_URI

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _default(name: str) -> object:
    """A `SearchConfig` field's default: the CLI shows the Python API's defaults."""
    return SearchConfig.__dataclass_fields__[name].default


def _choices(values: Sequence[str]) -> str:
    """`{a,b,c}`, as argparse shows choices (validation stays with SearchConfig)."""
    return "{" + ",".join(values) + "}"


_ENVIRONMENT = (
    "environment: AUTOML_STORAGE and AUTOML_TRACKING_URI (else MLflow's own "
    "MLFLOW_TRACKING_URI) apply to every subcommand without --storage / --tracking-uri; "
    "see the README for every AUTOML_* variable."
)


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    parser = _Parser(
        prog="automl",
        description="Hyperparameter and architecture search for Keras 3: Optuna trials, "
        "MLflow tracking, an exported best model.",
        epilog=f"Example: automl search digits --trials 10. {_ENVIRONMENT}",
    )
    parser.add_argument("--version", action="version", version=f"automl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _search_args(sub)
    _worker_args(sub)
    _refit_args(sub)
    _study_args(sub)
    _listing_args(sub)
    _ui_args(sub)
    return parser


def _search_args(sub: argparse._SubParsersAction) -> None:
    # Flags a user leaves out stay out of the namespace: SearchConfig's defaults apply.
    search = sub.add_parser(
        "search",
        help="run or resume a search on a dataset",
        description="Run a search; rerun with the same --study and --storage to resume. "
        "Finished trials count toward --trials.",
        argument_default=argparse.SUPPRESS,
        epilog=_ENVIRONMENT,
    )
    search.add_argument(
        "dataset",
        help="a built-in dataset (see `automl datasets`), a table (.csv, .tsv, .parquet; "
        "with --target), an image folder (one subfolder per class) or an .npz file",
    )
    search.add_argument("--target", help="the column to predict, for tables and texts")
    search.add_argument("--text-column", help="the column of texts, for text tables")
    search.add_argument(
        "--task",
        metavar=_choices(TASKS),
        help=f"one of {', '.join(TASKS)} (default: detected from the target)",
    )
    search.add_argument(
        "--metric",
        metavar=_choices(METRICS),
        help=f"validation metric to optimize: {', '.join(METRICS)} "
        "(default accuracy, or rmse for regression)",
    )
    search.add_argument(
        "--subset",
        type=float,
        help="train trials on this stratified fraction of the training data and promote "
        "the best to all of it (multi-fidelity; e.g. 0.25)",
    )
    search.add_argument(
        "--class-weight",
        help="'balanced' weighs classes inversely to their frequency (imbalanced classes)",
    )
    search.add_argument(
        "--space",
        help="a built-in space (see `automl spaces`; default: auto), file.py:build, "
        "package.module:build, or a .toml/.yaml space config",
    )
    search.add_argument(
        "--trials",
        type=int,
        help=f"total trials in the study (default {DEFAULT_TRIALS} without --timeout)",
    )
    search.add_argument("--timeout", help="wall-clock budget of this run: 1800, 90s, 30m, 2h")
    search.add_argument("--max-epochs", type=int, help="epoch cap per trial (default per dataset)")
    search.add_argument(
        "--patience", type=int, help="early-stopping patience in epochs (max(3, max-epochs/5))"
    )
    search.add_argument(
        "--sampler",
        metavar=_choices(SAMPLERS),
        help=f"one of {', '.join(SAMPLERS)} (default {_default('sampler')})",
    )
    search.add_argument(
        "--pruner",
        metavar=_choices(PRUNERS),
        help=f"one of {', '.join(PRUNERS)} (default {_default('pruner')})",
    )
    search.add_argument(
        "--seed", type=int, help=f"seed for sampler, split, weights ({_default('seed')})"
    )
    search.add_argument(
        "--jobs",
        type=int,
        help=f"worker processes on this machine sharing the study ({_default('jobs')}); "
        "see `automl worker`",
    )
    search.add_argument(
        "--max-params",
        type=int,
        help="reject, before training, any model with more parameters than this",
    )
    search.add_argument(
        "--max-latency-ms",
        type=float,
        help="reject, before training, any model slower than this per example "
        "(median CPU predict on one example, measured on this machine)",
    )
    search.add_argument(
        "--objectives",
        help="a multi-objective search: the validation metric, then costs to minimize "
        "(latency_ms, params, size_mb), e.g. val_accuracy,latency_ms",
    )
    search.add_argument("--study", help="study name (default DATASET-SPACE)")
    search.add_argument(
        "--storage", help=f"Optuna storage URL ($AUTOML_STORAGE, else {DEFAULT_STORAGE})"
    )
    search.add_argument("--tracking-uri", help=_TRACKING_HELP)
    search.add_argument("--out", type=Path, help="output folder (./automl-out/STUDY)")
    search.add_argument(
        "--data-dir", type=Path, help="folder with local dataset copies (else $AUTOML_DATA_DIR)"
    )


_TRACKING_HELP = (
    f"MLflow tracking URI ($AUTOML_TRACKING_URI, else $MLFLOW_TRACKING_URI, else "
    f"{DEFAULT_TRACKING_URI}; none: no MLflow)"
)
_STORAGE_HELP = f"Optuna storage URL ($AUTOML_STORAGE, else {DEFAULT_STORAGE})"


def _worker_args(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser(
        "worker",
        help="join an existing study as one more worker",
        description="Run trials of a study another `automl search` created, on this or "
        "another machine, until its shared --trials / --timeout budget is spent. The study "
        "records its own configuration; the dataset path and space file must exist here.",
    )
    worker.add_argument("--study", required=True, help="the study to join")
    worker.add_argument("--storage", help=_STORAGE_HELP)
    worker.add_argument("--tracking-uri", help=_TRACKING_HELP)
    worker.add_argument("--timeout", help="this worker's wall-clock budget (the study's)")
    worker.add_argument("--out", type=Path, help="checkpoint folder (./automl-out/STUDY)")
    worker.add_argument(
        "--data-dir", type=Path, default=None, help="local dataset copies on this machine"
    )


def _refit_args(sub: argparse._SubParsersAction) -> None:
    refit = sub.add_parser(
        "refit",
        help="retrain the best trial on train + validation and export it",
        description="Rebuild the best trial's model with its params and seed, train it on "
        "the training and validation rows for the trial's best epoch count, and write "
        "refit_model.keras and refit.json (its test metrics next to the trial's).",
    )
    refit.add_argument("study")
    refit.add_argument("--storage", help=_STORAGE_HELP)
    refit.add_argument("--out", type=Path, help="output folder (./automl-out/STUDY)")
    refit.add_argument("--data-dir", type=Path, default=None, help="local dataset copies")


def _study_args(sub: argparse._SubParsersAction) -> None:
    show = sub.add_parser("show", help="print a study's leaderboard")
    show.add_argument("study")
    show.add_argument("--storage", help=_STORAGE_HELP)
    show.add_argument("--top", type=int, default=20, help="rows to show (20)")

    export = sub.add_parser(
        "export",
        help="write a study's best model again, in a deployment format",
        description="Write the study's final model (an ensemble when one won, else the "
        "best trial's), or --trial N's, as keras (.keras), saved_model (a TensorFlow "
        "SavedModel folder), onnx (.onnx) or litert (.tflite). onnx needs pip install "
        "'automl[export]' (which brings LiteRT's runtime too); onnx and litert cannot hold "
        "string lookups or text vectorization. Each file is run with its runtime and "
        "checked against Keras before it is moved into place; nothing is written when the "
        "export is refused.",
    )
    export.add_argument("study")
    export.add_argument(
        "--out",
        type=Path,
        required=True,
        help="a file with the format's suffix, or a folder for best_model.<suffix>",
    )
    export.add_argument(
        "--format",
        default="keras",
        metavar="FORMAT",
        help="keras (default), saved_model, onnx or litert",
    )
    export.add_argument(
        "--trial", type=int, metavar="N", help="export trial N's model (default: the final one)"
    )
    export.add_argument("--storage", help=_STORAGE_HELP)


def _listing_args(sub: argparse._SubParsersAction) -> None:
    datasets = sub.add_parser("datasets", help="list the built-in datasets")
    datasets.add_argument(
        "--check", action="store_true", help="say which built-ins are available now, and where"
    )
    datasets.add_argument(
        "--data-dir", type=Path, default=None, help="folder with local copies ($AUTOML_DATA_DIR)"
    )
    sub.add_parser("spaces", help="list the built-in search spaces")


def _ui_args(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser(
        "ui",
        help="open the MLflow UI on the tracking store a search wrote",
        description="Start the MLflow UI (mlflow server) on the tracking store and print the "
        "URL of each study's experiment; Ctrl-C stops it.",
    )
    ui.add_argument("--study", help="print this study's experiment URL (default: all)")
    ui.add_argument("--tracking-uri", help=f"the search's {_TRACKING_HELP}")
    ui.add_argument("--port", type=int, default=5000, help="TCP port (5000)")
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (127.0.0.1: this machine only; 0.0.0.0 exposes it)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `automl` console script; returns the exit code."""
    # MLflow's usage telemetry phones home from a thread flushed at exit; off unless the
    # user turns it on (offline machines would wait on it).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"automl: error: {exc.for_cli()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("automl: interrupted; run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _cmd_search(args: argparse.Namespace) -> int:
    from automl.preflight import check_storage_url, check_tracking_uri

    given = {k: v for k, v in vars(args).items() if k != "command"}
    # Checked here, before the progress display and TensorFlow's import (run_search
    # checks again: it takes configs from Python too).
    config = SearchConfig(**given).resolved()
    check_storage_url(str(config.storage))
    if config.tracking_uri is not None:
        check_tracking_uri(config.tracking_uri)
    _quiet_libraries()
    from automl._progress import RichProgress
    from automl.engine import run_search

    with RichProgress() as progress:
        result = run_search(config, progress)
    progress.print_summary(result.summary)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from automl._progress import RichProgress
    from automl.engine._study import budget_spent
    from automl.engine._workers import open_study, worker_config
    from automl.export import summarize

    study, storage = open_study(args.study, args.storage)
    config = worker_config(
        study,
        storage,
        tracking_uri=args.tracking_uri,
        out=args.out,
        timeout=args.timeout,
        data_dir=args.data_dir,
    )
    if budget_spent(study, config.trials):  # nothing to do: no TensorFlow, no data
        held = sum(summarize(study)["trials"].values())
        print(f"worker done: study {config.study} holds {held} trials")
        return 0
    from automl.engine import run_search
    from automl.engine._memory import RECYCLE_EXIT

    with RichProgress() as progress:
        result = run_search(config, progress, worker=True)
    held = sum(result.summary["trials"].values())
    if result.recycled:  # the process that started this one replaces it
        print(f"worker retired (memory grew): study {config.study} holds {held} trials")
        return RECYCLE_EXIT
    print(f"worker done: study {config.study} holds {held} trials")
    return 0


def _cmd_refit(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from automl.engine._refit import refit_best

    report = refit_best(args.study, args.storage, out=args.out, data_dir=args.data_dir)

    def shown(metrics: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "-"

    print(f"refit trial {report['trial']} (seed {report['seed']}, {report['epochs']} epochs)")
    print(f"test, refit on train + validation: {shown(report['test'])}")
    print(f"test, the trial's own model:       {shown(report['trial_test'])}")
    print(f"model: {report['model_path']}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from automl._leaderboard import print_leaderboard
    from automl.engine._study import load_study

    print_leaderboard(load_study(args.study, settings.storage_url(args.storage)), top=args.top)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from automl.engine._study import load_study
    from automl.export import export_study
    from automl.formats import FORMATS, check_format

    check_format(args.format)  # before opening the study: a typo costs nothing
    study = load_study(args.study, settings.storage_url(args.storage))
    target = export_study(study, args.out, format=args.format, trial=args.trial)
    runtime = "" if args.format == "keras" else f" (load it with {FORMATS[args.format].runtime})"
    print(f"wrote {target}{runtime}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from automl.data import DATASETS

    if args.check:
        from automl.data._check import check_builtins

        table = Table("name", "available", "from", box=None)
        for name, available, where in check_builtins(args.data_dir):
            table.add_row(name, "yes" if available else "no", where)
        Console().print(table)
        return 0
    table = Table("name", "description", "source", "default space", box=None)
    for info in DATASETS.values():
        table.add_row(info.name, info.description, info.source, info.default_space)
    Console().print(table)
    return 0


def _cmd_spaces(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from search_spaces import SPACES

    table = Table("name", "data", "tasks", "description", box=None)
    for info in SPACES.values():
        table.add_row(info.name, ", ".join(info.kinds), ", ".join(info.tasks), info.description)
    Console().print(table)
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from automl.ui import serve_ui

    uri = settings.tracking_uri(args.tracking_uri)
    if uri is None:
        raise UsageError("{tracking_uri} is none: there is no MLflow store to show.")
    return serve_ui(uri, study=args.study, host=args.host, port=args.port)


_COMMANDS = {
    "search": _cmd_search,
    "worker": _cmd_worker,
    "refit": _cmd_refit,
    "show": _cmd_show,
    "export": _cmd_export,
    "datasets": _cmd_datasets,
    "spaces": _cmd_spaces,
    "ui": _cmd_ui,
}


def _quiet_libraries() -> None:
    """Keep the terminal for our progress display: silence library chatter."""
    import logging
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    for name in ("mlflow", "alembic", "optuna", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("automl").setLevel(logging.INFO)
    import optuna

    # Trial failures are shown by the progress display, one line each, not as tracebacks.
    optuna.logging.set_verbosity(optuna.logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
