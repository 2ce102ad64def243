"""High-cardinality categories: the table encoder's id columns, `ModelSpec.inputs`
leaving them out, `tabular`'s learned vector per value, and a search whose exported
model takes raw columns with unseen values in a fresh process.
"""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import FixedTrial

import automl
from automl.data._table import load_table
from automl.data._table_encoder import MAX_EMBEDDED, TableEncoder
from automl.engine._setup import model_spec
from automl.formats import _layer_configs
from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.layers import Columns
from search_spaces import mlp, tabular
from tests._fresh import assert_fresh_predictions_match
from tests.conftest import sqlite_url

KINDS = {"size": "numeric", "colour": "string", "shop": "string", "code": "integer"}


def _frame(rows: int = 600, shops: int = 120, seed: int = 0) -> pd.DataFrame:
    """A table with one low- and two high-cardinality category columns; each shop has
    its own effect on the label, so only a model that tells shops apart can learn it."""
    rng = np.random.default_rng(seed)
    shop = rng.integers(0, shops, rows)
    effect = rng.permutation(np.arange(shops) % 2)  # half the shops say yes
    return pd.DataFrame(
        {
            "size": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", None], rows),
            "shop": [f"shop_{i:03d}" for i in shop],
            "code": 1000 + rng.integers(0, 80, rows),
            "label": np.where(effect[shop] == 1, "yes", "no"),
        }
    )


def test_high_cardinality_columns_get_an_id_column_at_the_end():
    """Columns with more distinct values than one-hot keeps get ids (1 = most frequent
    value, 0 = unseen or seen once); the low-cardinality one does not."""
    frame = _frame()
    frame.loc[0, "shop"] = "seen_once"
    encoder = TableEncoder(KINDS, max_categories=50).fit(frame)
    assert list(encoder.stats_["embedded"]) == ["shop", "code"]
    assert "seen_once" not in encoder.stats_["embedded"]["shop"]
    repeated = [int((frame[c].value_counts() >= 2).sum()) for c in ("shop", "code")]
    assert encoder.categories == (repeated[0] + 1, repeated[1] + 1)
    rows = frame.head(4).copy()
    rows.loc[1, "shop"] = "never_seen"
    rows.loc[2, "code"] = 5
    vectors = encoder.transform(rows)
    ids = vectors[:, -2:]
    assert ids[1, 0] == 0 and ids[2, 1] == 0 and ids[0, 0] == 0  # unseen, unseen, once
    first = encoder.stats_["embedded"]["shop"].index(rows.loc[3, "shop"]) + 1
    assert ids[3, 0] == first
    # size; colour: red, green, missing (+OOV); the top-50 shops and codes (+OOV).
    one_hot_width = 1 + 4 + 51 + 51
    assert vectors.shape == (4, one_hot_width + 2)


def test_a_spec_without_ids_refuses_to_give_them_and_columns_checks_its_width():
    spec = ModelSpec((5,), "vector", "classification", 2, 100, 3)
    raw, features = spec.inputs()
    assert features is raw  # no ids, no normalization: the raw vector
    with pytest.raises(ValueError, match="no category ids"):
        spec.category_ids(raw)
    with pytest.raises(ValueError, match="needs"):
        Columns(2, 9)(keras.Input((4,)))


def test_a_column_within_the_one_hot_cap_gets_no_id_and_ids_are_capped():
    frame = _frame(rows=4000, shops=30)
    assert TableEncoder(KINDS, max_categories=50).fit(frame).stats_["embedded"].keys() == {"code"}
    many = pd.DataFrame({"shop": [f"s{i % 1500}" for i in range(4500)]})
    capped = TableEncoder({"shop": "string"}).fit(many)
    assert capped.categories == (MAX_EMBEDDED + 1,)


def test_spec_leaves_the_ids_out_of_the_features_and_their_statistics(tmp_path):
    """`inputs()` gives every space the features without the ids, standardized with
    statistics of those features alone; `category_ids()` gives the ids."""
    path = tmp_path / "shops.csv"
    _frame().to_csv(path, index=False)
    data = load_table(path, target="label")
    encoded = data.encoder.encode(data.x_train, data.x_val)
    spec = model_spec(data, encoded, max_epochs=3)
    # "code" has 80 integer values: a quantity to `column_kinds`, so only "shop" has ids.
    assert spec.categories == encoded.categories and len(spec.categories) == 1
    width = encoded.x_train.shape[1]
    assert spec.normalization[0].shape == (width - 1,)
    raw, features = spec.inputs()
    ids = spec.category_ids(raw)
    probe = keras.Model(raw, [features, ids])
    got_features, got_ids = probe.predict(encoded.x_train[:5], verbose=0)
    np.testing.assert_array_equal(got_ids, encoded.x_train[:5, -1:])
    mean, variance = spec.normalization
    expected = (encoded.x_train[:5, :-1] - mean) / np.sqrt(np.maximum(variance, 1e-12))
    np.testing.assert_allclose(got_features, expected, rtol=1e-4, atol=1e-4)
    # A space that does not embed categories builds on the features alone.
    model = mlp.build(HyperParameters(optuna.create_study().ask()), spec)
    assert model.get_layer("features").output.shape[-1] == width - 1


@pytest.mark.parametrize("members", [1, 8])
@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_tabular_learns_what_only_the_category_ids_tell(tmp_path, members):
    """A label set by which of 120 shops a row comes from (most shops outside the top 50
    one-hot): the starting point with category embeddings fits the training rows, and
    the model saves and loads with identical predictions."""
    path = tmp_path / "shops.csv"
    _frame(rows=2400).to_csv(path, index=False)
    data = load_table(path, target="label")
    encoded = data.encoder.encode(data.x_train, data.x_val)
    spec = model_spec(data, encoded, max_epochs=30)
    point = {**tabular.starting_points(spec)[0], "members": members}
    assert point["category_dim"] == 8
    model = tabular.build(HyperParameters(FixedTrial(point)), spec)
    assert model.get_layer("category_embedding_0").input_dim == spec.categories[0]
    keras.utils.set_random_seed(0)
    history = model.fit(
        encoded.x_train,
        data.y_train,
        epochs=30,
        batch_size=64,
        verbose=0,
        validation_data=(encoded.x_val, data.y_val),
    )
    # The top-50 one-hot alone tells 50 of 120 shops apart (about 0.71 expected); with
    # the ids the label is all there.
    assert history.history["val_accuracy"][-1] > 0.85, history.history["val_accuracy"][-5:]
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        again.predict(encoded.x_val, verbose=0),
        model.predict(encoded.x_val, verbose=0),
        atol=1e-6,
    )


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_search_exports_a_model_that_embeds_categories_from_raw_columns(tmp_path):
    """A 2-trial tabular search on the shops table: the exported model takes raw
    columns, unseen shops included, in a fresh process as it does here."""
    path = tmp_path / "shops.csv"
    frame = _frame(rows=1200)
    frame.to_csv(path, index=False)
    automl.search(
        "tabular",
        dataset=str(path),
        target="label",
        trials=2,
        max_epochs=8,
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri="none",
        out=tmp_path / "out",
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["space"] == "tabular"
    # The exported model maps each shop to an id and embeds it (the engine passed the
    # encoder's ids to the space, not only the preprocessing).
    archive = zipfile.ZipFile(tmp_path / "out" / "best_model.keras")
    layers = _layer_configs(json.loads(archive.read("config.json")))
    names = {(layer["class_name"], layer["config"].get("name")) for layer in layers}
    assert ("StringLookup", "automl_category_id_0") in names
    assert ("Embedding", "category_embedding_0") in names
    make_input = (
        "{'size': np.array([0.1, -1.0, 2.0]), "
        "'colour': np.array(['red', '', 'blue'], dtype=object), "
        "'shop': np.array(['shop_001', 'shop_999', 'shop_050'], dtype=object), "
        "'code': np.array([1001, 7, 1050], dtype='int64')}"
    )
    predictions = assert_fresh_predictions_match(
        tmp_path / "out" / "best_model.keras", make_input, tmp_path
    )
    assert predictions.shape == (3, 2)
