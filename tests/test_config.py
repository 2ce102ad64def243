"""automl.config: durations, URL masking and the one place a SearchConfig is validated."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from automl import SearchConfig, UsageError
from automl.config import PRUNERS, SAMPLERS, parse_duration
from automl.data import DATASETS
from automl.preflight import mask_url


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1800", 1800.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        (" 1.5h ", 5400.0),
        (45, 45.0),
        (2.5, 2.5),
        (None, None),
    ],
)
def test_parse_duration_accepts_the_documented_forms(text, seconds):
    """`1800`, `90s`, `30m`, `2h`, `1d` and plain numbers are seconds; None is no limit."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "5x", "", "30 minutes", "1e3"])
def test_parse_duration_rejects_non_durations(text):
    """Anything else is a usage error that names the flag and shows the accepted forms."""
    with pytest.raises(UsageError, match=r"^timeout must look like 1800, 90s, 30m or 2h"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-5", "0", "0s", -1, 0])
def test_parse_duration_rejects_non_positive(text):
    """A zero or negative budget is refused, quoting the value."""
    with pytest.raises(UsageError, match=r"^timeout must be positive, but got"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://bob:secret@db.example:5432/optuna",
            "postgresql://bob:***@db.example:5432/optuna",
        ),
        ("mysql+pymysql://bob:secret@127.0.0.1/x", "mysql+pymysql://bob:***@127.0.0.1/x"),
        ("http://bob:secret@127.0.0.1:5000", "http://bob:***@127.0.0.1:5000"),
        ("sqlite:///automl.db", "sqlite:///automl.db"),
        ("postgresql://bob@db/x", "postgresql://bob@db/x"),
        ("http://[::1", "http://[::1"),  # unparsable: returned unchanged, never raises
    ],
)
def test_mask_url_hides_only_the_password(url, shown):
    """Credentials are shown as `user:***@`; URLs without a password are left alone."""
    assert mask_url(url) == shown
    assert "secret" not in mask_url(url)


def test_resolved_fills_derived_defaults(tmp_path):
    """Space, epochs, patience, study name and out folder come from the dataset table."""
    config = SearchConfig("iris").resolved()
    assert config.space == DATASETS["iris"].default_space == "auto"
    assert config.max_epochs == DATASETS["iris"].default_epochs
    assert config.patience == max(3, config.max_epochs // 5)
    assert config.study == "iris-auto"
    assert config.out == Path("automl-out") / "iris-auto"
    assert config.timeout is None

    (tmp_path / "d").mkdir()
    image = SearchConfig(
        "cifar10", max_epochs=5, timeout="30m", out="x", data_dir=tmp_path / "d"
    ).resolved()
    assert image.space == "auto"
    assert image.patience == 3  # never below 3
    assert image.study == "cifar10-auto"
    assert image.timeout == 1800.0
    assert image.out == Path("x") and image.data_dir == tmp_path / "d"


def test_resolved_keeps_explicit_values_and_is_idempotent():
    """Given values win over defaults, and validating twice changes nothing."""
    config = SearchConfig(
        "digits",
        space="mlp",
        max_epochs=7,
        patience=2,
        study="s",
        sampler="random",
        pruner="none",
        trials=None,
        timeout="90s",
    )
    first = dataclasses.asdict(config.resolved())
    assert first["study"] == "s" and first["patience"] == 2 and first["timeout"] == 90.0
    assert dataclasses.asdict(config.resolved()) == first


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dataset": "nope"}, r"unknown dataset 'nope'; choose one of: cifar10, .*iris"),
        (
            {"space": "nope"},
            r"unknown space 'nope'; give a built-in name \(auto, mlp, tabular, cnn, ",
        ),
        ({"trials": 0}, r"^trials must be at least 1, but got 0\."),
        ({"trials": -3}, r"^trials must be at least 1, but got -3\."),
        ({"timeout": "abc"}, r"^timeout must look like"),
        ({"timeout": -5}, r"^timeout must be positive"),
        ({"max_epochs": 0}, r"^max_epochs must be at least 1, but got 0\."),
        ({"patience": 0}, r"^patience must be at least 1, but got 0\."),
        ({"sampler": "xx"}, r"unknown sampler 'xx'; choose one of: " + ", ".join(SAMPLERS)),
        ({"pruner": "xx"}, r"unknown pruner 'xx'; choose one of: " + ", ".join(PRUNERS)),
    ],
)
def test_resolved_rejects_each_broken_rule_in_one_line(options, message):
    """Every rule breaks with a UsageError naming the field, the value and the choices."""
    options = {"dataset": "iris", **options}
    with pytest.raises(UsageError, match=message) as caught:
        SearchConfig(**options).resolved()
    assert "\n" not in str(caught.value)


def test_config_is_cheap_to_import_and_resolve():
    """Building and validating a config imports no TensorFlow, Keras, Optuna or MLflow."""
    code = (
        "import sys, json; import automl; "
        "automl.SearchConfig('cifar10', timeout='2h').resolved(); "
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'optuna', 'mlflow', "
        "'sklearn') if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    ("space", "study"),
    [
        ("spaces/mine.py:build", "iris-mine.build"),
        ("my_pkg.spaces:build_model", "iris-spaces.build_model"),
        ("conf/narrow.toml", "iris-narrow"),
    ],
)
def test_custom_space_names_pass_validation_and_give_safe_study_names(
    space, study, tmp_path, monkeypatch
):
    """References and existing config files pass the cheap check; the study name has no
    slashes."""
    monkeypatch.chdir(tmp_path)
    for folder in ("spaces", "conf"):
        (tmp_path / folder).mkdir()
    (tmp_path / "spaces" / "mine.py").write_text("def build(hp): ...\n")
    (tmp_path / "conf" / "narrow.toml").write_text('space = "mlp"\n')
    assert SearchConfig("iris", space=space).resolved().study == study
