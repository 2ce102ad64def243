"""`tabular`: an MLP on periodic embeddings of the numeric features, for tables and vectors.

The recipe of Gorishniy et al. (2022), "On Embeddings for Numerical Features in Tabular
Deep Learning": each standardized feature goes through its own periodic embedding
(`PeriodicEmbedding`, the "PLR" variant: sines and cosines of trainable frequencies,
then a per-feature linear layer and a ReLU), the embeddings are concatenated and a plain
ReLU MLP with dropout reads them; AdamW trains it. On the paper's benchmarks this
closes most of the gap between MLPs and gradient-boosted trees. `embedding` may also be
"none", the same MLP on the raw standardized features, so the search can tell whether
the embedding earns its cost on the data at hand.

`members` > 1 makes the MLP a TabM-mini batch ensemble (Gorishniy et al. 2024, "TabM"):
each row is copied for k members, each copy scaled by that member's own vector
(`EnsembleAdapter`), the hidden layers are shared, each member has its own output layer
(`EnsembleDense`), and the model predicts the members' mean (`EnsembleMean`, which
trains each member on its own loss). k members cost about k times the compute of one.

Tables reach the space as one vector per row (numbers standardized, categories one-hot,
see `automl.data._table_encoder`), so every feature of it is embedded, the one-hot ones
too: a two-valued feature's embedding is just two learned vectors. A high-cardinality
category (more values than one-hot keeps: a neighbourhood, a product code) also arrives
as an id (`ModelSpec.categories`), and gets a learned vector per value
(`keras.layers.Embedding`, width `category_dim`), concatenated with the features' own
embeddings: the usual entity-embedding recipe for tabular networks. Piecewise-linear
encodings would need the training rows, which a `ModelSpec` does not carry.

`STARTING_POINTS` hold one model, from the paper's tuned MLP-PLR configurations scaled
to small tables: PLR with 48 frequencies and 24-wide embeddings, two ReLU layers of 256
with dropout 0.1, as a batch ensemble of 8 members, AdamW at 1e-3 with weight decay
1e-4, batch 64. Its sigma, 0.03, is
the best of 0.03/0.1/0.3/1 measured here with that recipe (60 epochs, early stopping,
3 splits, 2026-12-01): test accuracy 0.977/0.965/0.959/0.956 on breast_cancer,
0.991/0.991/0.982/0.963 on wine, RMSE 55.4/58.6/59.7/66.4 on diabetes; the same MLP
without embeddings scored 0.974, 1.000 and 56.9. Large sigmas overfit tables this small.
With 1, 8 and 16 members (same recipe, 3 splits): 0.971/0.968/0.968 on breast_cancer,
0.982/0.991/1.000 on wine, RMSE 57.3/57.0/57.2 on diabetes: within noise of each other
here; 8 follows the TabM paper's finding that ensembles help, at a middle cost.
"""

from __future__ import annotations

from typing import Any

import keras

from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.blocks import choose_dropout, output_head
from automl.spaces.layers import (
    Columns,
    EnsembleAdapter,
    EnsembleDense,
    EnsembleMean,
    PeriodicEmbedding,
)
from automl.spaces.training import choose_training, points_for
from search_spaces import SPACES

DESCRIPTION = "MLP or TabM-mini ensemble on periodic (PLR) feature embeddings; for tables"
KINDS = ("vector",)
TASKS = ("classification", "regression")
ORDER = 12

EMBEDDINGS = ("periodic", "none")
EMBEDDING_DIMS = (8, 16, 24, 32, 64)
FREQUENCIES = 48  # the paper's package default; sigma matters far more than the count
SIGMA = (0.01, 10.0)
UNITS = (64, 128, 256, 512)
CATEGORY_DIMS = (4, 8, 16)  # embedding width per high-cardinality category column
MEMBERS = (1, 4, 8, 16)  # 1: one MLP; more: a TabM-mini batch ensemble of that many
LEARNING_RATE = (1e-4, 3e-3)

PLR_MLP = {
    "embedding": "periodic",
    "sigma": 0.03,
    "embedding_dim": 24,
    "layers": 2,
    "units": 256,
    "dropout": 0.1,
    "members": 8,
    "label_smoothing": 0.0,
    "batch_size": 64,
    "optimizer": "adamw",
    "learning_rate": 1e-3,
    "schedule": "constant",
    "weight_decay": 1e-4,
}

STARTING_POINTS = [PLR_MLP]


def starting_points(spec: ModelSpec) -> list[dict[str, Any]]:
    """`STARTING_POINTS` (the label smoothing only for classification; 8-wide category
    embeddings when the table has high-cardinality columns)."""
    points = points_for(spec, KINDS, STARTING_POINTS)
    return [{**p, "category_dim": 8} for p in points] if spec.categories else points


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one MLP or batch ensemble of MLPs, on periodic embeddings of
    the features or on the features themselves.

    Varies the embedding (periodic or none) and, for periodic, its initial frequency
    scale sigma (log) and width; the MLP's depth (1-4), width and dropout; the ensemble
    members (1: a single MLP); the width of the high-cardinality categories'
    embeddings, when the table has such columns; label smoothing, the learning rate and
    schedule of AdamW, its weight decay and the batch size.

    Raises:
        UsageError: For data kinds other than vectors (tables are vectors here).
    """
    SPACES["tabular"].require_kind(spec)
    embedding = hp.Choice("embedding", list(EMBEDDINGS))
    with hp.conditional_scope("embedding", "periodic"):
        sigma = hp.Float("sigma", *SIGMA, sampling="log")
        embedding_dim = hp.Choice("embedding_dim", list(EMBEDDING_DIMS))
    layers = hp.Int("layers", 1, 4)
    units = hp.Choice("units", list(UNITS))
    dropout = choose_dropout(hp)
    members = int(hp.Choice("members", list(MEMBERS)))
    category_dim = hp.Choice("category_dim", list(CATEGORY_DIMS)) if spec.categories else 0
    compile_model = choose_training(hp, spec, choices=("adamw",), learning_rate=LEARNING_RATE)

    inputs, x = spec.inputs()
    if embedding == "periodic":
        x = PeriodicEmbedding(embedding_dim, FREQUENCIES, sigma, name="periodic_embedding")(x)
        x = keras.layers.Flatten(name="embeddings")(x)
    if category_dim:
        x = keras.layers.Concatenate(name="with_categories")(
            [x, category_embeddings(inputs, spec, int(category_dim))]
        )
    if members > 1:
        x = EnsembleAdapter(members, name="ensemble_adapter")(x)
    for i in range(layers):  # shared by the members: Dense acts on the last axis
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    head = output_head(x, spec) if members == 1 else ensemble_head(x, spec)
    return compile_model(keras.Model(inputs, head, name="tabular"))


def ensemble_head(x: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    """TabM-mini's output: one linear head per member, then the members' mean (softmax
    probabilities for classification; standardized targets rescaled for regression, as
    `output_head` does), in float32 whatever the dtype policy."""
    units = spec.output_units
    x = EnsembleDense(units, name="member_heads", dtype="float32")(x)
    if spec.task == "regression":
        mean, std = spec.target_stats or (0.0, 1.0)
        x = EnsembleMean(name="ensemble_mean", dtype="float32")(x)
        return keras.layers.Rescaling(scale=std, offset=mean, name="output", dtype="float32")(x)
    x = keras.layers.Activation("softmax", name="member_probabilities", dtype="float32")(x)
    return EnsembleMean(name="output", dtype="float32")(x)


def category_embeddings(raw: keras.KerasTensor, spec: ModelSpec, dim: int) -> keras.KerasTensor:
    """One learned `dim`-wide vector per value of each high-cardinality category column
    of `raw` (id 0, the values too rare to get their own, shares one), flattened to
    (batch, columns * dim)."""
    ids = spec.category_ids(raw)
    vectors = []
    for j, size in enumerate(spec.categories):
        column = Columns(j, j + 1, name=f"category_{j}")(ids)
        embedded = keras.layers.Embedding(size, dim, name=f"category_embedding_{j}")(column)
        vectors.append(keras.layers.Flatten(name=f"category_vector_{j}")(embedded))
    if len(vectors) == 1:
        return vectors[0]
    return keras.layers.Concatenate(name="category_vectors")(vectors)
