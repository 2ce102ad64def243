"""Custom Keras layers the built-in spaces need and Keras lacks.

Each layer is registered as `automl>ClassName` and has a `get_config`, so a model that
uses it saves to `.keras` and loads back with `keras.models.load_model(path)` (safe mode
on) once this module is imported. No `Lambda` layers: they do not load in safe mode.
Layers here are written with `keras.ops` only, so they run on every backend.

What lives here: position embeddings for attention models, mask-aware global average
and max pooling, the bag of word n-grams of token ids (`NgramBag`), the periodic
embeddings of numeric features (`PeriodicEmbedding`), a table's column slice
(`Columns`), and the layers of a batch
ensemble (`EnsembleAdapter`, `EnsembleDense`, `EnsembleMean`, as in TabM-mini). The spaces
themselves (the built-in space modules) and the shared `choose_*` helpers
(`automl.spaces.blocks`) do not.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="automl")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding of each position to a `(batch, steps, features)` tensor.

    The table has one row per step of the input it is built on, so the sequence length is
    fixed by the model's input shape (as it is for every `ModelSpec`).

    Args:
        initializer: Initializer of the `(steps, features)` table.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, initializer: Any = "random_normal", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)
        # Padding masks from a token embedding pass through: the output has the same steps.
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        steps, features = input_shape[-2], input_shape[-1]
        if steps is None:
            raise ValueError(
                "PositionEmbedding needs a fixed number of steps, but got input shape "
                f"{input_shape}. Received: input_shape={input_shape}"
            )
        self.embeddings = self.add_weight(
            name="embeddings", shape=(steps, features), initializer=self.initializer
        )

    def call(self, inputs: Any) -> Any:
        return inputs + ops.cast(self.embeddings, inputs.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="automl")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Adds the fixed sine/cosine position encoding of "Attention Is All You Need".

    Feature `2i` of step `p` gets `sin(p / max_wavelength^(2i/d))`, feature `2i+1` the
    cosine. Nothing is trained, so it works for any sequence length.

    Args:
        max_wavelength: The longest wavelength of the encoding (10,000 in the paper).
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, max_wavelength: float = 10_000.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_wavelength = float(max_wavelength)
        self.supports_masking = True
        self.built = True  # no weights

    def call(self, inputs: Any) -> Any:
        steps, features = ops.shape(inputs)[-2], inputs.shape[-1]
        positions = ops.cast(ops.arange(steps), "float32")[:, None]
        pairs = math.ceil(features / 2)
        rates = ops.power(
            self.max_wavelength, -2.0 * ops.cast(ops.arange(pairs), "float32") / features
        )
        angles = positions * rates[None, :]
        # Interleave sin and cos: (steps, pairs, 2) -> (steps, 2 * pairs), trimmed for odd d.
        encoding = ops.reshape(
            ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1), (steps, 2 * pairs)
        )[:, :features]
        return inputs + ops.cast(encoding, inputs.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


class _MaskedGlobalPooling1D(keras.layers.Layer):
    """Base of the global poolings over steps that skip masked (padding) steps.

    A row whose steps are all masked (a text with no token: "", "!!!") pools to zeros, so
    the head sees "no evidence" and predicts from its bias alone. Pooling it any other way
    gives 0/0 or -inf, and one such row turns a batch's loss, then every weight, to NaN.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True
        self.built = True  # no weights

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[-1])

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None  # the step axis is gone


@keras.saving.register_keras_serializable(package="automl")
class MaskedGlobalAveragePooling1D(_MaskedGlobalPooling1D):
    """Global average pooling over steps that skips masked (padding) steps.

    Keras' `GlobalAveragePooling1D` divides the masked sum by the number of unmasked
    steps, which is 0/0 = NaN for a row with none; here that row pools to zeros.

    Args:
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.mean(inputs, axis=1)
        valid = ops.expand_dims(ops.cast(mask, "bool"), -1)
        # `where`, not a product with the mask: a masked step's inf would make 0 * inf.
        total = ops.sum(ops.where(valid, inputs, ops.zeros_like(inputs)), axis=1)
        count = ops.sum(ops.cast(valid, inputs.dtype), axis=1)
        return total / ops.maximum(count, ops.ones_like(count))  # zero steps: 0 / 1


@keras.saving.register_keras_serializable(package="automl")
class MaskedGlobalMaxPooling1D(_MaskedGlobalPooling1D):
    """Global max pooling over steps that skips masked (padding) steps.

    Keras' `GlobalMaxPooling1D` ignores masks, so padding would take part in the max. A
    row whose steps are all masked pools to zeros.

    Args:
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.max(inputs, axis=1)
        valid = ops.expand_dims(ops.cast(mask, "bool"), -1)
        pooled = ops.max(ops.where(valid, inputs, float("-inf")), axis=1)
        return ops.where(ops.any(valid, axis=1), pooled, ops.zeros_like(pooled))


@keras.saving.register_keras_serializable(package="automl")
class NgramBag(keras.layers.Layer):
    """Token ids to a bag of word n-grams: unigram and bigram features per text.

    What `TextVectorization(ngrams=2, output_mode=...)` outputs, computed from the token
    ids a text model takes (0 = padding), with a feature table fitted on the training
    texts (`automl.spaces.ngrams.fit_ngrams`): feature `i < vocab_size` counts token id
    `i`; feature `vocab_size + j` counts the bigram `bigram_keys[j]`; a bigram not in
    the table is left out. Backend-neutral (`keras.ops` only): the table and the idf
    weights are frozen weights, saved in the model.

    Args:
        vocab_size: Token ids are below it.
        num_bigrams: Bigram features (the table's length).
        output_mode: "multi_hot" (1 where a feature occurs), "count" or "tf_idf" (count
            times the feature's idf).
        normalize: Scale each text's bag to unit L2 norm (as scikit-learn's
            `TfidfVectorizer` does), so long and short texts speak alike.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    MODES = ("multi_hot", "count", "tf_idf")

    def __init__(
        self,
        vocab_size: int,
        num_bigrams: int = 0,
        output_mode: str = "tf_idf",
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if output_mode not in self.MODES:
            raise ValueError(
                f"`output_mode` must be one of {self.MODES}, but got {output_mode!r}. "
                f"Received: output_mode={output_mode}"
            )
        self.vocab_size, self.num_bigrams = int(vocab_size), int(num_bigrams)
        self.output_mode, self.normalize = output_mode, bool(normalize)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.bigram_keys = self.add_weight(
            name="bigram_keys",
            shape=(self.num_bigrams,),
            dtype="int32",
            initializer="zeros",
            trainable=False,
        )
        self.idf = self.add_weight(
            name="idf",
            shape=(self.vocab_size + self.num_bigrams,),
            initializer="ones",
            trainable=False,
        )

    def set_table(self, bigram_keys: Any, idf: Any) -> None:
        """Put a fitted table in (sorted bigram keys, one idf per feature)."""
        self.bigram_keys.assign(ops.convert_to_tensor(bigram_keys, dtype="int32"))
        self.idf.assign(ops.convert_to_tensor(idf, dtype=self.idf.dtype))

    def call(self, inputs: Any) -> Any:
        ids = ops.cast(inputs, "int32")
        # An id the table does not know (a set's own ids past the vocabulary) counts as
        # out of vocabulary (1), as TextVectorization's own ids would.
        ids = ops.where(ids >= self.vocab_size, ops.ones_like(ids), ids)
        batch, steps = ops.shape(ids)[0], ops.shape(ids)[1]
        rows = ops.broadcast_to(ops.arange(batch, dtype="int32")[:, None], (batch, steps))
        features, weights = [ids], [ops.cast(ids > 0, self.compute_dtype)]
        if self.num_bigrams and ids.shape[1] != 1:
            found, hit = self._bigrams(ids)
            features.append(found)
            weights.append(ops.cast(hit, self.compute_dtype))
            rows = ops.concatenate([rows, rows[:, 1:]], axis=1)
        features = ops.concatenate(features, axis=1)
        weights = ops.concatenate(weights, axis=1)
        # One scatter sums every (text, feature) occurrence; padding and misses add 0.
        indices = ops.stack([ops.reshape(rows, (-1,)), ops.reshape(features, (-1,))], axis=1)
        size = self.vocab_size + self.num_bigrams
        bag = ops.scatter(indices, ops.reshape(weights, (-1,)), (batch, size))
        if self.output_mode == "multi_hot":
            bag = ops.minimum(bag, 1.0)
        elif self.output_mode == "tf_idf":
            bag = bag * ops.cast(self.idf, bag.dtype)
        if self.normalize:
            norm = ops.sqrt(ops.sum(ops.square(bag), axis=-1, keepdims=True))
            bag = bag / ops.maximum(norm, 1e-6)  # an empty text stays all zeros
        return bag

    def _bigrams(self, ids: Any) -> tuple[Any, Any]:
        """Each step pair's feature index, and whether the pair is a known bigram."""
        first, second = ids[:, :-1], ids[:, 1:]
        keys = first * self.vocab_size + second
        flat = ops.reshape(keys, (-1,))
        position = ops.minimum(
            ops.cast(ops.searchsorted(self.bigram_keys, flat), "int32"), self.num_bigrams - 1
        )
        hit = ops.equal(ops.take(self.bigram_keys, position), flat)
        hit = ops.reshape(hit, ops.shape(keys)) & (first > 0) & (second > 0)
        found = ops.where(hit, ops.reshape(position, ops.shape(keys)) + self.vocab_size, 0)
        return found, hit

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.vocab_size + self.num_bigrams)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "num_bigrams": self.num_bigrams,
            "output_mode": self.output_mode,
            "normalize": self.normalize,
        }


@keras.saving.register_keras_serializable(package="automl")
class Columns(keras.layers.Layer):
    """Columns `start` to `stop` (exclusive) of a `(batch, features)` input.

    How a table model takes its features and its category ids apart
    (`ModelSpec.inputs`, `ModelSpec.category_ids`).

    Args:
        start: First column kept.
        stop: One past the last column kept.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, start: int, stop: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= start < stop:
            raise ValueError(
                f"Columns needs 0 <= start < stop. Received: start={start}, stop={stop}"
            )
        self.start, self.stop = int(start), int(stop)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        width = input_shape[-1]
        if len(input_shape) != 2 or (width is not None and self.stop > width):
            raise ValueError(
                f"Columns({self.start}, {self.stop}) needs (batch, at least {self.stop}) "
                f"inputs. Received: input_shape={input_shape}"
            )

    def call(self, inputs: Any) -> Any:
        return inputs[:, self.start : self.stop]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.stop - self.start)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@keras.saving.register_keras_serializable(package="automl")
class PeriodicEmbedding(keras.layers.Layer):
    """Embeds each numeric feature on its own: the "PLR" embedding of Gorishniy et al.
    (2022), "On Embeddings for Numerical Features in Tabular Deep Learning".

    Feature `j` with value `x` becomes `[sin(2 pi c_j x), cos(2 pi c_j x)]` over its own
    trainable frequencies `c_j` (drawn from N(0, sigma)), then its own linear layer and a
    ReLU: `(batch, features)` -> `(batch, features, embedding_dim)`. Periodic functions
    of a scalar let the network that follows fit sharp, non-monotonic effects of one
    feature that a plain MLP on the raw value learns slowly. Inputs should be
    standardized (sigma is in units of the feature's scale).

    Args:
        embedding_dim: Width of each feature's embedding.
        frequencies: Frequencies per feature (each gives a sine and a cosine).
        sigma: Standard deviation of the initial frequencies; small values start smooth,
            large ones start with high-frequency (nearly memorizing) features.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self, embedding_dim: int = 24, frequencies: int = 48, sigma: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if embedding_dim < 1 or frequencies < 1 or not sigma > 0:
            raise ValueError(
                "`embedding_dim` and `frequencies` must be >= 1 and `sigma` > 0, but got "
                f"embedding_dim={embedding_dim}, frequencies={frequencies}, sigma={sigma}. "
                f"Received: embedding_dim={embedding_dim}, frequencies={frequencies}, "
                f"sigma={sigma}"
            )
        self.embedding_dim, self.frequencies = int(embedding_dim), int(frequencies)
        self.sigma = float(sigma)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        features = input_shape[-1]
        if features is None or len(input_shape) != 2:
            raise ValueError(
                "PeriodicEmbedding takes (batch, features) with a known number of features, "
                f"but got input shape {input_shape}. Received: input_shape={input_shape}"
            )
        self.frequency = self.add_weight(
            name="frequency",
            shape=(features, self.frequencies),
            initializer=keras.initializers.RandomNormal(stddev=self.sigma),
        )
        # PyTorch's nn.Linear initialization, as in the paper's code: U(+-1/sqrt(fan_in)).
        limit = 1.0 / math.sqrt(2 * self.frequencies)
        uniform = keras.initializers.RandomUniform(-limit, limit)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, 2 * self.frequencies, self.embedding_dim),
            initializer=uniform,
        )
        self.bias = self.add_weight(
            name="bias", shape=(features, self.embedding_dim), initializer=uniform
        )

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        angles = 2.0 * math.pi * x[:, :, None] * ops.cast(self.frequency, x.dtype)
        periodic = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
        # One linear layer per feature: (batch, f, 2k) x (f, 2k, d) -> (batch, f, d).
        out = ops.einsum("bfk,fkd->bfd", periodic, ops.cast(self.kernel, x.dtype))
        return ops.relu(out + ops.cast(self.bias, x.dtype))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[-1], self.embedding_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "frequencies": self.frequencies,
            "sigma": self.sigma,
        }


@keras.saving.register_keras_serializable(package="automl")
class EnsembleAdapter(keras.layers.Layer):
    """Copies each row for `members` ensemble members, each scaled by its own vector:
    `(batch, features)` -> `(batch, members, features)`.

    The one per-member layer at the bottom of TabM-mini (Gorishniy et al. 2024, "TabM:
    Advancing Tabular Deep Learning with Parameter-Efficient Ensembling"): the layers
    above are shared by all members (Keras' `Dense` acts on the last axis), so k members
    cost k times the compute but barely more weights. The scales start as random signs,
    as in TabM-mini, so members differ from the first step.

    Args:
        members: Ensemble members (k).
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, members: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.members = _positive("members", members)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.scale = self.add_weight(
            name="scale", shape=(self.members, input_shape[-1]), initializer="ones"
        )
        signs = ops.sign(keras.random.uniform(self.scale.shape) - 0.5)
        self.scale.assign(ops.where(signs == 0, 1.0, signs))  # saved; loading overwrites it

    def call(self, inputs: Any) -> Any:
        return inputs[:, None, :] * ops.cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.members, input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "members": self.members}


@keras.saving.register_keras_serializable(package="automl")
class EnsembleDense(keras.layers.Layer):
    """One dense layer per ensemble member: `(batch, members, features)` ->
    `(batch, members, units)`, member i through its own kernel and bias (TabM's heads).

    Args:
        units: Output units per member.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = _positive("units", units)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        members, features = input_shape[-2], input_shape[-1]
        limit = 1.0 / math.sqrt(features)  # nn.Linear's initialization, as in TabM's code
        uniform = keras.initializers.RandomUniform(-limit, limit)
        self.kernel = self.add_weight(
            name="kernel", shape=(members, features, self.units), initializer=uniform
        )
        self.bias = self.add_weight(name="bias", shape=(members, self.units), initializer=uniform)

    def call(self, inputs: Any) -> Any:
        out = ops.einsum("bkf,kfu->bku", inputs, ops.cast(self.kernel, inputs.dtype))
        return out + ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="automl")
class EnsembleMean(keras.layers.Layer):
    """The ensemble's prediction: `(batch, members, outputs)` -> `(batch, outputs)`.

    At inference, the mean of the members' predictions (probabilities for a softmax
    head). In training, one member picked at random for each row: TabM trains each
    member on its own loss (the mean of the members' losses, not the loss of their mean,
    which would let members lean on each other), and a random member per row gives that
    objective's gradient in expectation with one output, so the task's usual loss and
    metrics apply unchanged.

    Args:
        seed: Seed of the member draws.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training:
            return ops.mean(inputs, axis=1)
        batch, members = ops.shape(inputs)[0], inputs.shape[1]
        picks = keras.random.randint((batch, 1, 1), 0, members, seed=self.seed_generator)
        return ops.take_along_axis(inputs, ops.cast(picks, "int32"), axis=1)[:, 0, :]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


def _positive(name: str, value: int) -> int:
    """`value` as an int, refused unless >= 1 (Keras' message style)."""
    if int(value) < 1:
        raise ValueError(f"`{name}` must be >= 1, but got {value}. Received: {name}={value}")
    return int(value)


__all__ = [
    "EnsembleAdapter",
    "EnsembleDense",
    "EnsembleMean",
    "MaskedGlobalAveragePooling1D",
    "MaskedGlobalMaxPooling1D",
    "NgramBag",
    "PeriodicEmbedding",
    "PositionEmbedding",
    "SinusoidalPositionEmbedding",
]
