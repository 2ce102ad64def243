"""Every built-in space runs one real trial through the engine on data it fits, and its
sampled params reach MLflow.

Digits from scikit-learn stand in for each data kind: 8x8 images (0-255), 8 rows of 8
pixels as a sequence, and the 64 pixel intensities (0-16) as token ids for text, until
the text datasets land.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from sklearn.datasets import load_digits

import automl
from automl.data import from_arrays
from tests.conftest import mlflow_url, sqlite_url


def _digits(kind: str):
    x, y = load_digits(return_X_y=True)
    if kind == "image":
        return from_arrays((x * 16).reshape(-1, 8, 8, 1), y, kind="image", name="digits_image")
    if kind == "sequence":
        return from_arrays(x.reshape(-1, 8, 8), y, kind="sequence", name="digits_rows")
    return from_arrays(x.astype("int32"), y, kind="text", name="digits_tokens")


CASES = [
    ("mlp", "iris"),
    ("cnn", "image"),
    ("resnet", "image"),
    ("rnn", "sequence"),
    ("rnn", "text"),
    ("transformer", "text"),
    ("transformer", "image"),
    ("transfer", "image"),
    ("auto", "sequence"),
]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builtin_spaces")


@pytest.mark.slow  # ~100 s in all; .ci/run runs the slow marker after the default suite
@pytest.mark.parametrize(("space", "kind"), CASES, ids=[f"{s}-{k}" for s, k in CASES])
def test_space_trains_one_trial_and_logs_its_params(tracking, space, kind):
    """One trial completes (or is a clear FAIL reason), and the MLflow trial run holds
    every param Optuna sampled, names and values alike."""
    study = f"{space}-{kind}"
    data = "iris" if kind == "iris" else _digits(kind)
    target: str = space
    if space == "transfer":  # no ImageNet file offline: train from scratch, as asked here
        config = tracking / "transfer.toml"
        config.write_text(
            'space = "transfer"\n[params]\nweights = "none"\nimage_size = 32\n'
            'backbone = "mobilenet_v3_small"\n'
        )
        target = str(config)
    result = automl.search(
        target,
        dataset=data,
        trials=1,
        max_epochs=1,
        study=study,
        storage=sqlite_url(tracking / "automl.db"),
        tracking_uri=mlflow_url(tracking / "mlflow.db"),
        out=tracking / "out" / study,
    )
    trial = result.study.trials[0]
    assert trial.state.name == "COMPLETE", trial.user_attrs.get("reason")
    client = mlflow.MlflowClient(mlflow_url(tracking / "mlflow.db"))
    experiment = client.get_experiment_by_name(study)
    (run,) = client.search_runs([experiment.experiment_id], "tags.`automl.role` = 'trial'")
    logged = run.data.params
    assert {k: logged[k] for k in trial.params} == {k: str(v) for k, v in trial.params.items()}
    assert int(logged["n_params"]) > 0
    if space == "auto":
        assert trial.params["family"] in ("rnn", "transformer")
        family = trial.params["family"]
        assert all(k == "family" or k.startswith(f"{family}.") for k in trial.params)
    assert np.isfinite(trial.value)
