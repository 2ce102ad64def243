"""Predict with an exported model in a new Python process, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from tests.conftest import cli_env


def run_fresh(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new interpreter with the CLI's environment; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=cli_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def predict_in_fresh_process(model_path: Path, make_input: str, cwd: Path) -> list[list[float]]:
    """Load `model_path` with `automl.load_model` in a new interpreter and predict.

    Args:
        model_path: The exported `.keras` file.
        make_input: A Python expression (numpy as `np`, pandas as `pd`) that builds the
            raw input: a dict of columns, an object array of strings, pixels, ...
        cwd: Working folder of the process.

    Returns:
        The predictions, as nested lists.
    """
    code = textwrap.dedent(f"""
        import json
        import numpy as np, pandas as pd
        import automl
        model = automl.load_model({str(model_path)!r})
        print("PREDICTIONS", json.dumps(model.predict({make_input}, verbose=0).tolist()))
    """)
    done = run_fresh(code, cwd)
    line = next(x for x in done.stdout.splitlines() if x.startswith("PREDICTIONS "))
    return json.loads(line.removeprefix("PREDICTIONS "))


def assert_fresh_predictions_match(
    model_path: Path, make_input: str, cwd: Path, *, atol: float = 1e-5
) -> np.ndarray:
    """Predict on the raw input `make_input` builds in a new interpreter, and check each
    value against the same model loaded and predicting in this process.

    Returns:
        The fresh process's predictions.
    """
    import pandas as pd

    import automl

    fresh = np.asarray(predict_in_fresh_process(model_path, make_input, cwd))
    here = automl.load_model(model_path).predict(
        eval(make_input, {"np": np, "pd": pd}),  # noqa: S307 - the test's own expression
        verbose=0,
    )
    np.testing.assert_allclose(fresh, here, atol=atol)
    return fresh
