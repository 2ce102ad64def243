"""The `transformer` space and its custom layers on real, tiny data: scikit-learn's digits,
and short review-like texts (tests/_texts.py) where some texts tokenize to nothing.

- "sequence": 8 timesteps (pixel rows) of 8 features, standardized in the model.
- "text": the 64 pixel intensities 0..16 as token ids (vocab 17, 0 = padding). A stand-in
  for real text until the text datasets land: it exercises the embedding, the padding
  mask and the position embeddings, not language.
- "image": (8, 8, 1) pixels scaled to 0..255, cut into patches by the ViT-style path.

Every model is real: built from real Optuna trials, compiled, called, trained, saved.
"""

from __future__ import annotations

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial

from automl import UsageError
from automl.data._text import TextEncoder
from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.layers import (
    MaskedGlobalAveragePooling1D,
    MaskedGlobalMaxPooling1D,
    PositionEmbedding,
    SinusoidalPositionEmbedding,
)
from search_spaces import transformer
from tests._digits import digits_as, digits_spec, fit_on_digits
from tests._texts import FILLER, NEGATIVE, POSITIVE

optuna.logging.set_verbosity(optuna.logging.WARNING)

KINDS = ("sequence", "text", "image")


def _point(kind: str, **changes) -> dict:
    """The starting point for `kind`, with some values changed."""
    (point,) = transformer.starting_points(digits_spec(kind))
    return {**point, **changes}


def _numpy(tensor) -> np.ndarray:
    return keras.ops.convert_to_numpy(tensor)


# -- the space --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    ["sequence", *(pytest.param(k, marks=pytest.mark.slow) for k in ("text", "image"))],
)
def test_random_points_build_call_and_train(kind):
    """Random points build compiled models that take raw data, output one probability per
    class and take a training step; kind-specific names appear only for their kind."""
    x, y = digits_as(kind)
    spec = digits_spec(kind)
    for seed in range(2):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        for _ in range(2):
            trial = study.ask()
            model = transformer.build(HyperParameters(trial), spec)
            assert model.compiled
            assert tuple(model.inputs[0].shape[1:]) == x.shape[1:]
            probabilities = _numpy(model(x[:4], training=False))
            assert probabilities.shape == (4, 10)
            np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
            model.run_eagerly = True  # a real step without tracing a graph per model (slow)
            loss = model.train_on_batch(x[:16], y[:16])
            assert np.isfinite(loss).all(), trial.params
            image_only = {"patch_size", "augment"} & set(trial.params)
            sequence_only = {"position", "pooling"} & set(trial.params)
            assert bool(image_only) == (kind == "image")
            assert bool(sequence_only) == (kind != "image")
            assert "weight_decay" in trial.params or trial.params["optimizer"] in ("adam", "nadam")
            study.tell(trial, 0.0)
            keras.utils.clear_session()


def test_shared_names_have_one_distribution_across_kinds():
    """Names both paths sample (layers, heads, ...) get the same Optuna distribution."""
    distributions = {}
    for kind in KINDS:
        trial = optuna.create_study().ask()
        transformer.build(HyperParameters(trial), digits_spec(kind))
        distributions[kind] = trial.distributions
        keras.utils.clear_session()
    shared = set.intersection(*(set(d) for d in distributions.values()))
    assert shared >= {"d_model", "layers", "heads", "key_dim", "ff_multiplier", "dropout"}
    assert {"norm_first", "activation", "optimizer", "learning_rate", "batch_size"} <= shared
    for name in shared:
        assert distributions["text"][name] == distributions["image"][name], name
        assert distributions["sequence"][name] == distributions["image"][name], name


def test_regression_head_has_one_unit_in_target_units():
    """A regression spec gets one linear output rescaled by the target mean and std."""
    x, _ = digits_as("text")
    spec = digits_spec("text", task="regression")
    model = transformer.build(HyperParameters(FixedTrial(_point("text"))), spec)
    assert model.outputs[0].shape[-1] == 1
    assert model.loss == "mean_squared_error"
    assert model.get_layer("output").scale == pytest.approx(spec.target_stats[1])
    assert _numpy(model(x[:3])).shape == (3, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_starting_point_is_exactly_one_point_of_the_space(kind):
    """For each kind, the starting point names every param the build samples and no other:
    2 blocks of 4 heads with key dim 32, learned positions, AdamW."""
    point = _point(kind)
    trial = FixedTrial(point)  # raises if the build asks for a param the point lacks
    model = transformer.build(HyperParameters(trial), digits_spec(kind))
    assert trial.params == point
    attention = [
        layer for layer in model.layers if isinstance(layer, keras.layers.MultiHeadAttention)
    ]
    assert [(a.num_heads, a.key_dim) for a in attention] == [(4, 32), (4, 32)]
    assert isinstance(model.get_layer("position_embedding"), PositionEmbedding)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_starting_point_learns_digit_rows():
    """The starting point beats chance (10 %) by far in 3 epochs on digits as sequences."""
    x, y = digits_as("sequence")
    spec = digits_spec("sequence", max_epochs=3)
    keras.utils.set_random_seed(0)
    hp = HyperParameters(FixedTrial(_point("sequence")))
    model = transformer.build(hp, spec)
    assert fit_on_digits(model, hp, "sequence")[-1] > 0.5


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("text", {"position": "learned", "pooling": "mean"}),
        ("text", {"position": "sinusoidal", "pooling": "max", "norm_first": False}),
        ("image", {"patch_size": 2, "augment": "flip_crop"}),
    ],
)
def test_saves_to_keras_and_loads_back_in_safe_mode(tmp_path, kind, changes):
    """Models with the custom layers (and a smoothed loss) round-trip through `.keras`
    with identical predictions; no Lambda layers, so safe mode loads them."""
    x, _ = digits_as(kind)
    point = _point(kind, label_smoothing=0.1, **changes)
    model = transformer.build(HyperParameters(FixedTrial(point)), digits_spec(kind))
    rng = np.random.default_rng(0)
    for weight in model.weights:  # every weight off its initial value, norms included
        weight.assign(rng.normal(0.0, 0.2, weight.shape).astype(weight.dtype))
    model.optimizer.build(model.trainable_variables)  # as after training: its state saves too
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert not [layer for layer in loaded.layers if isinstance(layer, keras.layers.Lambda)]
    np.testing.assert_allclose(
        _numpy(loaded(x[:32], training=False)), _numpy(model(x[:32], training=False)), atol=1e-6
    )


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_text_padding_is_masked_out_of_attention_and_pooling(pooling):
    """Token 0 is masked: whatever its embedding, the predictions do not change."""
    x, _ = digits_as("text")
    model = transformer.build(
        HyperParameters(FixedTrial(_point("text", pooling=pooling, dropout=0.0))),
        digits_spec("text"),
    )
    before = model.predict(x[:16], verbose=0)
    embedding = model.get_layer("token_embedding")
    table = _numpy(embedding.embeddings)
    table[0] = np.random.default_rng(1).normal(size=table.shape[1]) * 5
    embedding.embeddings.assign(table)
    np.testing.assert_allclose(model.predict(x[:16], verbose=0), before, atol=1e-5)


# Texts TextVectorization turns into all padding: nothing left after stripping punctuation
# and splitting on whitespace. (Unknown words are not among them: they map to id 1.)
EMPTY_TEXTS = ("", "!!!", "   ", "?! ... ,")


def _short_reviews(rows: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Short reviews (2-8 words, one sentiment cue) labelled 1/0; every 8th text is one of
    `EMPTY_TEXTS`, so every training batch holds texts with no token."""
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(rows):
        label = int(rng.integers(2))
        words = [*rng.choice(FILLER, rng.integers(1, 8)), rng.choice((NEGATIVE, POSITIVE)[label])]
        texts.append(EMPTY_TEXTS[i // 8 % 4] if i % 8 == 0 else " ".join(rng.permutation(words)))
        labels.append(label)
    return np.array(texts, dtype=object), np.array(labels)


@pytest.mark.parametrize(
    "changes",
    [
        {"pooling": "mean"},
        pytest.param(
            {"pooling": "max", "norm_first": False, "position": "sinusoidal"},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_texts_that_tokenize_to_nothing_train_and_predict_finite(changes):
    """Issue #14: texts with no token ("", "!!!") leave a row with every step masked. At a
    high learning rate the starting point trains 2 epochs with a finite loss, and the
    model on raw strings predicts finite probabilities for such texts."""
    texts, labels = _short_reviews()
    encoded = TextEncoder(texts).encode(texts, texts, None)
    x = encoded.x_train
    assert (x == 0).all(axis=1).sum() == len(texts) // 8  # the empty texts are all padding
    spec = ModelSpec(
        x.shape[1:], "text", "classification", 2, len(x), 2, vocab_size=encoded.vocab_size
    )
    keras.utils.set_random_seed(0)
    hp = HyperParameters(FixedTrial(_point("text", learning_rate=5e-3, **changes)))
    model = transformer.build(hp, spec)
    history = model.fit(
        x,
        labels,
        epochs=2,
        verbose=0,
        callbacks=hp.callbacks,
        **{**hp.fit_kwargs, "batch_size": 32},
    )
    assert np.isfinite(history.history["loss"]).all(), history.history["loss"]
    assert np.isfinite(model.predict(x, verbose=0)).all()
    raw = np.array([*EMPTY_TEXTS, "unheardof words only", "great fun"], dtype=object)
    probabilities = encoded.wrap(model).predict(raw, verbose=0)
    assert np.isfinite(probabilities).all(), probabilities
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


def test_image_patches_tile_the_image():
    """The sampled patch size is used where it divides the image, else the largest
    divisor below it; large images get patches big enough for at most 32 per side."""
    assert [transformer.patch_side(8, p) for p in (2, 4, 8)] == [2, 4, 8]
    assert [transformer.patch_side(28, p) for p in (2, 4, 8)] == [2, 4, 7]
    assert transformer.patch_side(7, 4) == 1  # a 7/8 random crop of 8x8 digits
    assert transformer.patch_side(224, 2) == 7
    assert transformer.patch_side(37, 8) == 37  # a prime side too long for 1-pixel patches

    spec = ModelSpec((28, 28, 1), "image", "classification", 10, 100, 2)
    point = _point("image", patch_size=8, augment="none")
    model = transformer.build(HyperParameters(FixedTrial(point)), spec)
    assert model.get_layer("patch_embedding").kernel_size == (7, 7)
    assert tuple(model.get_layer("patches_as_steps").output.shape[1:]) == (16, 64)


def test_vector_data_is_refused_with_a_usage_error():
    """The transformer space does not build for vectors, and says which space does."""
    spec = ModelSpec((4,), "vector", "classification", 3, 10, 1)
    with pytest.raises(UsageError, match="transformer space builds for sequence/text/image"):
        transformer.build(HyperParameters(optuna.create_study().ask()), spec)
    assert transformer.starting_points(spec) == []


# -- the custom layers ------------------------------------------------------------------


def test_sinusoidal_position_embedding_follows_the_formula():
    """Feature 2i of step p gets sin(p / 10000^(2i/d)), feature 2i+1 the cosine; odd widths
    are trimmed."""
    for width in (6, 5):
        out = _numpy(SinusoidalPositionEmbedding()(np.zeros((2, 4, width), "float32")))
        steps = np.arange(4)[:, None]
        rates = 10_000.0 ** (-2 * np.arange(3) / width)
        expected = np.stack([np.sin(steps * rates), np.cos(steps * rates)], -1).reshape(4, 6)
        np.testing.assert_allclose(out[0], expected[:, :width], atol=1e-5)
        np.testing.assert_allclose(out[1], out[0])


def test_masked_global_max_pooling_skips_masked_steps():
    """Masked steps never win the max; an all-masked row pools to zeros."""
    values = np.array([[[1.0], [9.0], [-3.0]], [[-5.0], [-7.0], [8.0]]], "float32")
    mask = np.array([[True, False, True], [False, False, False]])
    out = _numpy(MaskedGlobalMaxPooling1D()(values, mask=mask))
    np.testing.assert_allclose(out, [[1.0], [0.0]])
    np.testing.assert_allclose(_numpy(MaskedGlobalMaxPooling1D()(values)), [[9.0], [8.0]])


def test_masked_global_average_pooling_skips_masked_steps():
    """The mean is over unmasked steps only; an all-masked row pools to zeros, not 0/0."""
    values = np.array([[[1.0], [9.0], [-3.0]], [[-5.0], [-7.0], [8.0]]], "float32")
    mask = np.array([[True, False, True], [False, False, False]])
    layer = MaskedGlobalAveragePooling1D()
    np.testing.assert_allclose(_numpy(layer(values, mask=mask)), [[-1.0], [0.0]])
    np.testing.assert_allclose(_numpy(layer(values)), [[7 / 3], [-4 / 3]], rtol=1e-6)


def test_position_embedding_config_round_trips():
    """get_config/from_config keep the initializer; the table has one row per step."""
    layer = PositionEmbedding(initializer="zeros", name="pos")
    restored = PositionEmbedding.from_config(layer.get_config())
    out = restored(np.ones((2, 3, 4), "float32"))
    assert restored.embeddings.shape == (3, 4)
    np.testing.assert_allclose(_numpy(out), 1.0)
