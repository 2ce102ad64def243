"""The public surface: what `automl` exports, `--version`, help that lists choices, Keras
callbacks in `search`, and errors in the caller's language."""

from __future__ import annotations

import keras
import pytest

import automl
from automl import SearchConfig, UsageError
from automl.cli import build_parser
from tests.conftest import run_cli, sqlite_url


def test_the_package_exports_its_api():
    from automl.engine import SearchObserver, SearchResult

    assert automl.SearchObserver is SearchObserver and automl.SearchResult is SearchResult
    assert {"SearchObserver", "SearchResult", "search", "load_model"} <= set(automl.__all__)


def test_version_and_help_list_the_choices(tmp_path, capsys):
    version = run_cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"automl {automl.__version__}"
    text = build_parser()._subparsers._group_actions[0].choices["search"].format_help()
    assert "{tpe,random,cmaes,gp,qmc}" in text and "{hyperband,median,sha,none}" in text
    assert "{binary,multiclass,classification,regression}" in text
    assert "{accuracy,auc,f1,rmse,mse,mae,r2,loss}" in text


def test_cli_and_python_share_their_defaults():
    """A flag left out means the Python default: the same resolved config either way."""
    args = build_parser().parse_args(["search", "iris", "--timeout", "60"])
    given = {k: v for k, v in vars(args).items() if k != "command"}
    from_cli = SearchConfig(**given).resolved()
    assert from_cli == SearchConfig("iris", timeout=60).resolved()
    assert from_cli.trials is None  # a timeout alone sets no trial count, in both
    assert SearchConfig("iris").resolved().trials == 20


def test_resolved_never_changes_the_callers_config():
    config = SearchConfig("iris", timeout="2m")
    resolved = config.resolved()
    assert config == SearchConfig("iris", timeout="2m") and config.study is None
    assert resolved.timeout == 120.0 and resolved.study == "iris-auto"
    assert resolved.resolved() == resolved
    with pytest.raises(AttributeError):
        config.trials = 3  # type: ignore[misc]


def test_every_cli_flag_and_config_field_can_be_named_in_an_error():
    import argparse
    import dataclasses

    from automl._errors import OPTIONS

    fields = {f.name for f in dataclasses.fields(SearchConfig)}
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {
        option[2:].replace("-", "_")
        for sub in subparsers.choices.values()
        for action in sub._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert fields | flags <= OPTIONS
    error = UsageError("{class_weight} in {/tmp/{x}/path} and {not_an_option}")
    assert str(error) == "class_weight in {/tmp/{x}/path} and {not_an_option}"
    assert error.for_cli() == "--class-weight in {/tmp/{x}/path} and {not_an_option}"


def test_errors_name_the_parameter_in_python_and_the_flag_on_the_cli(tmp_path):
    with pytest.raises(UsageError) as caught:
        SearchConfig("iris", class_weight="heavy").resolved()
    assert str(caught.value).startswith("class_weight must be 'balanced', but got 'heavy'")
    cli = run_cli("search", "iris", "--class-weight", "heavy", cwd=tmp_path)
    assert cli.returncode == 2
    assert cli.stderr.startswith("automl: error: --class-weight must be 'balanced', but got")


class _CountEpochs(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.epochs = 0
        self.fits = 0

    def on_train_begin(self, logs=None) -> None:
        self.fits += 1

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.epochs += 1


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_search_runs_the_users_keras_callbacks_and_reports_best_value(tmp_path):
    counter = _CountEpochs()
    result = automl.search(
        "iris",
        trials=2,
        max_epochs=2,
        pruner="none",
        storage=sqlite_url(tmp_path / "a.db"),
        tracking_uri=None,
        out=tmp_path / "out",
        callbacks=[counter],
    )
    assert counter.fits == 2 and counter.epochs == sum(
        t.user_attrs["epochs"] for t in result.study.trials
    )
    assert result.best_value == result.study.best_value
    assert result.best_value == result.summary["best"]["val_metric"]
