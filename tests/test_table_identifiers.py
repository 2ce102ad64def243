"""Issue #20: a table column that holds a different text in every row (an id, a name) is
left out with one warning instead of being one-hot encoded as noise."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from automl import UsageError
from automl.data import load_data


def _write(path, rows: int = 60, **extra):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "customer": [f"C-{i:05d}" for i in rng.permutation(rows)],  # an identifier
            "plan": rng.choice(["basic", "pro"], size=rows),
            "usage": rng.normal(size=rows),
            **extra,
            "churned": rng.choice(["yes", "no"], size=rows),
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_an_identifier_column_is_left_out_with_one_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="automl"):
        data = load_data(str(_write(tmp_path / "t.csv")), target="churned")
    assert list(data.x_train.columns) == ["plan", "usage"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("left out column 'customer' of ")
    assert "every row holds a different text (an identifier" in warnings[0]
    # The encoder never sees it: the exported model takes the other columns only.
    assert set(data.encoder.kinds) == {"plan", "usage"}


def test_repeated_or_missing_values_are_categories_not_identifiers(tmp_path, caplog):
    """A text column with one repeated value, or a gap, stays a feature; so do numbers
    that differ in every row."""
    rows = 60
    names = [f"n{i}" for i in range(rows)]
    repeated = [*names[:-1], names[0]]
    gap = [*names[:-1], None]
    path = _write(tmp_path / "t.csv", rows, repeated=repeated, gap=gap)
    with caplog.at_level(logging.WARNING, logger="automl"):
        data = load_data(str(path), target="churned")
    assert list(data.x_train.columns) == ["plan", "usage", "repeated", "gap"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"left out column 'customer' of {path}: every row holds a different text (an "
        "identifier, not a category); a model cannot learn from it"
    ]


def test_a_table_of_identifiers_only_is_refused(tmp_path):
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(30)], "label": [0, 1] * 15})
    frame.to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(UsageError, match=r"no feature columns besides the target 'label'.*'id'"):
        load_data(str(tmp_path / "ids.csv"), target="label")
