"""The `tabular` space (an MLP on periodic embeddings of the features) and its
`PeriodicEmbedding` layer: shapes, saving and loading, building from real trials, `auto`
choosing it for tables, and a search on a real table whose exported model takes raw
columns in a fresh process.
"""

from __future__ import annotations

import importlib.util
import json

import keras
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import FixedTrial
from sklearn.datasets import load_wine

import automl
from automl import UsageError
from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.layers import (
    EnsembleAdapter,
    EnsembleDense,
    EnsembleMean,
    PeriodicEmbedding,
)
from search_spaces import SPACES, auto, tabular
from tests._fresh import assert_fresh_predictions_match
from tests.conftest import mlflow_url, sqlite_url

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _spec(task: str = "classification", features: int = 5, kind: str = "vector") -> ModelSpec:
    return ModelSpec(
        (features,),
        kind,
        task,
        1 if task == "regression" else 3,
        100,
        3,
        normalization=(np.zeros(features), np.ones(features)),
        target_stats=(10.0, 2.0) if task == "regression" else None,
    )


def test_embedding_gives_each_feature_its_own_vector():
    """(batch, features) -> (batch, features, embedding_dim), ReLU'd; a feature's
    embedding depends on that feature alone."""
    layer = PeriodicEmbedding(embedding_dim=6, frequencies=4, sigma=1.0)
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == (8, 3, 6) and layer.compute_output_shape((None, 3)) == (None, 3, 6)
    assert (out >= 0).all()
    changed = x.copy()
    changed[:, 1] += 1.0
    again = keras.ops.convert_to_numpy(layer(changed))
    np.testing.assert_allclose(again[:, [0, 2]], out[:, [0, 2]], rtol=1e-6)
    assert not np.allclose(again[:, 1], out[:, 1])
    assert [w.shape for w in layer.weights] == [(3, 4), (3, 8, 6), (3, 6)]


def test_embedding_refuses_bad_arguments():
    with pytest.raises(ValueError, match="`sigma` > 0"):
        PeriodicEmbedding(sigma=0.0)
    with pytest.raises(ValueError, match="known number of features"):
        PeriodicEmbedding()(keras.Input((4, 2)))


def test_embedding_saves_and_loads_with_identical_predictions(tmp_path):
    """The frequencies and per-feature layers are saved in the .keras file, which loads
    in Keras' safe mode with the layer registered."""
    inputs = keras.Input((4,))
    x = keras.layers.Flatten()(PeriodicEmbedding(8, 5, 0.5, name="plr")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    path = tmp_path / "plr.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.get_layer("plr").get_config()["sigma"] == 0.5
    x = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_ensemble_layers_copy_rows_per_member_and_average_them():
    """The adapter scales each member's copy by +-1 at first, each member has its own
    head, and the mean is the members' mean at inference but one member per row in
    training (each member trained on its own loss)."""
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    adapter = EnsembleAdapter(4)
    copies = keras.ops.convert_to_numpy(adapter(x))
    scale = keras.ops.convert_to_numpy(adapter.scale)
    assert copies.shape == (6, 4, 3) and set(np.unique(scale)) <= {-1.0, 1.0}
    np.testing.assert_allclose(copies, x[:, None, :] * scale)
    heads = EnsembleDense(2)
    out = keras.ops.convert_to_numpy(heads(copies))
    assert out.shape == (6, 4, 2) and heads.kernel.shape == (4, 3, 2)
    mean = EnsembleMean(seed=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mean(out)), out.mean(axis=1), rtol=1e-6)
    picked = keras.ops.convert_to_numpy(mean(out, training=True))
    assert picked.shape == (6, 2)
    assert all(any(np.allclose(row, member) for member in out[i]) for i, row in enumerate(picked))
    with pytest.raises(ValueError, match="`members` must be >= 1"):
        EnsembleAdapter(0)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_batch_ensemble_saves_and_loads_with_identical_predictions(tmp_path, task):
    """members > 1: k members over shared hidden layers; the saved model loads in safe
    mode and predicts the same means."""
    spec = _spec(task)
    point = {**tabular.starting_points(spec)[0], "members": 4}
    model = tabular.build(HyperParameters(FixedTrial(point)), spec)
    assert model.get_layer("ensemble_adapter").output.shape == (None, 4, 5 * 24)
    assert model.get_layer("dense_1").output.shape == (None, 4, 256)
    assert model.output.shape == (None, spec.output_units)
    x = np.random.default_rng(2).normal(size=(32, 5)).astype("float32")
    y = np.arange(32) % 3 if task == "classification" else x[:, 0] * 2 + 10
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "tabm.keras")
    loaded = keras.models.load_model(tmp_path / "tabm.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    if task == "classification":
        np.testing.assert_allclose(model.predict(x, verbose=0).sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("fmt", ["saved_model", "onnx", "litert"])
def test_embedding_and_ensemble_export_to_every_format(tmp_path, fmt):
    """sin, cos, the per-feature and per-member einsums and the members' mean convert:
    `write_format` checks that the written file predicts what Keras does."""
    from automl.formats import FORMATS, write_format

    missing = [m for m in FORMATS[fmt].needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the export extra is not installed ({', '.join(missing)})")
    inputs = keras.Input((4,))
    x = keras.layers.Flatten()(PeriodicEmbedding(8, 5, 0.5)(inputs))
    x = EnsembleDense(3)(EnsembleAdapter(2)(x))
    x = EnsembleMean()(keras.layers.Activation("softmax")(x))
    keras.Model(inputs, x).save(tmp_path / "plr.keras")
    assert write_format(tmp_path / "plr.keras", tmp_path / fmt, fmt).exists()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_starting_point_builds_the_paper_recipe(task):
    """The starting point: PLR embeddings, two ReLU layers of 256 with dropout in a batch
    ensemble of 8, AdamW; with embedding "none" and one member, a plain MLP reads the
    standardized features directly."""
    spec = _spec(task)
    (point,) = tabular.starting_points(spec)
    assert ("label_smoothing" in point) == (task == "classification")
    model = tabular.build(HyperParameters(FixedTrial(point)), spec)
    embedding = model.get_layer("periodic_embedding")
    assert embedding.output.shape == (None, 5, 24) and embedding.sigma == 0.03
    assert [model.get_layer(f"dense_{i}").units for i in range(2)] == [256, 256]
    assert model.get_layer("ensemble_adapter").members == 8
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.output.shape == (None, spec.output_units)

    plain = {**point, "embedding": "none", "layers": 1, "members": 1}
    model = tabular.build(HyperParameters(FixedTrial(plain)), spec)
    kinds = (PeriodicEmbedding, EnsembleAdapter, EnsembleMean)
    assert not any(isinstance(layer, kinds) for layer in model.layers)
    assert model.get_layer("dense_0").input.shape == (None, 5)


def test_space_refuses_other_kinds():
    point = tabular.starting_points(_spec())[0]
    with pytest.raises(UsageError, match="tabular space builds for vector data"):
        tabular.build(HyperParameters(FixedTrial(point)), _spec(kind="image"))
    assert tabular.starting_points(_spec(kind="text")) == []


def test_auto_searches_tabular_next_to_mlp_on_tables():
    """`auto` on vectors (tables arrive as vectors) chooses between mlp and tabular, and
    tabular's starting point is its first trial."""
    spec = _spec()
    assert auto.families(spec) == ["mlp", "tabular"]
    points = auto.starting_points(spec)
    assert points[0]["family"] == "tabular"
    assert points[0]["tabular.embedding"] == "periodic"
    assert SPACES["tabular"].kinds == ("vector",)


def _wine_table(path):
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["level"] = pd.cut(frame["alcohol"], 3, labels=["low", "mid", "high"]).astype("str")
    frame.loc[[2, 30, 95], "magnesium"] = np.nan
    frame.to_csv(path, index=False)
    return frame


@pytest.mark.slow  # 12 s idle, 45 s on a busy machine: a search, then a fresh interpreter
def test_search_on_a_table_exports_a_model_that_takes_raw_columns(tmp_path):
    """A 2-trial tabular search on wine as a CSV (a text column, gaps): the exported
    model predicts raw columns in a fresh process as it does here."""
    frame = _wine_table(tmp_path / "wine.csv")
    result = automl.search(
        "tabular",
        dataset=str(tmp_path / "wine.csv"),
        target="cultivar",
        trials=2,
        max_epochs=5,
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri=mlflow_url(tmp_path / "mlflow.db"),
        out=tmp_path / "out",
    )
    states = [t.state.name for t in result.study.trials]
    assert states.count("COMPLETE") >= 1, [t.user_attrs for t in result.study.trials]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["space"] == "tabular"
    # The starting point reaches ~0.95 on wine's 36 test rows; 0.75 allows for noise.
    assert summary["test"]["metrics"]["accuracy"] > 0.75
    rows = frame.drop(columns=["cultivar", "level"]).head(3)
    # None for a missing number (row 2's magnesium is one; row 0's is blanked here).
    columns = {c: [None if pd.isna(v) else v for v in rows[c]] for c in rows.columns}
    columns["magnesium"][0] = None
    make_input = (
        f"{{**{{k: np.array(v, dtype=float) for k, v in {columns!r}.items()}}, "
        "'level': np.array(['mid', '', 'never-seen'], dtype=object)}"
    )
    predictions = assert_fresh_predictions_match(
        tmp_path / "out" / "best_model.keras", make_input, tmp_path
    )
    assert predictions.shape == (3, 3)
    assert np.allclose(predictions.sum(axis=1), 1, atol=1e-4)
