"""`ModelSpec`: what a space may know about the data it builds for."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

    from automl.spaces.ngrams import NgramTable

KINDS = ("image", "vector", "sequence", "text")
TASKS = ("classification", "regression")


@dataclasses.dataclass(frozen=True, eq=False)
class ModelSpec:
    """The facts a space's `build(hp, spec)` needs, and nothing of the data itself.

    Attributes:
        input_shape: Shape of one raw example.
        kind: "image" (uint8 pixels, HxWxC), "vector" (float features), "sequence"
            (float timesteps x features) or "text" (int token ids, 0 = padding).
        task: "classification" or "regression".
        num_classes: Number of output classes (1 for regression).
        n_train: Training rows, to size batches and learning-rate schedules.
        max_epochs: Epoch cap of a trial, for schedules that decay over the run.
        normalization: Per-feature (mean, variance) of the training split, for vectors
            and sequences.
        vocab_size: Number of token ids for text (ids are < vocab_size).
        target_stats: (mean, std) of the training targets, for regression heads.
        metric: The metric trials are scored on ("accuracy", "auc", "rmse", ...), so
            `compile_for_task` logs it every epoch.
        image_sample: A few thousand raw training images (uint8, taken once per search),
            for layers fitted to the data such as patch whitening; None for other kinds.
        token_sample: The training token ids for text (at the study's largest vocabulary
            and sequence length), for layers fitted to the data such as the n-gram bag's
            table and idf weights; None for other kinds.
        categories: For table vectors: the number of ids (0 = unseen) of each
            category-id column at the end of the vector, one per high-cardinality
            column. `inputs()` leaves them out; `category_ids()` gives them to spaces
            that embed categories. Empty for other data. `normalization` covers the
            other features only. A space that makes its own `keras.Input` from
            `input_shape` gets these raw ids as features: build on `inputs()`.
        downsample: For images explored at lower resolution: raw images are this many
            times `input_shape` per side, and `inputs()` averages each block of
            downsample x downsample pixels, so the layers see `input_shape` (see
            `downsampled`). 1: full size.
    """

    input_shape: tuple[int, ...]
    kind: str
    task: str
    num_classes: int
    n_train: int
    max_epochs: int
    normalization: tuple[np.ndarray, np.ndarray] | None = None
    vocab_size: int | None = None
    target_stats: tuple[float, float] | None = None
    metric: str | None = None
    image_sample: np.ndarray | None = None
    token_sample: np.ndarray | None = None
    categories: tuple[int, ...] = ()
    downsample: int = 1
    # Derived facts computed once per search, not per trial (and their one warning). A
    # mutable dict in a frozen spec on purpose: `dataclasses.replace` shares it.
    _derived: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def patch_whitening(self, patch_size: int = 2) -> tuple[np.ndarray, np.ndarray] | None:
        """The patch-whitening (kernel, bias) fitted to `image_sample` (pixels scaled to
        [0, 1]), computed once per spec; None, with one warning, when the sample is too
        small to estimate them (see `automl.spaces.whitening`)."""
        key = f"patch_whitening_{patch_size}"
        if key not in self._derived:
            from automl.spaces.whitening import fit_whitening, too_few_images_message

            sample = self.image_sample if self.image_sample is not None else np.zeros((0,))
            fitted = fit_whitening(sample.astype(np.float32) / 255.0, patch_size)
            if fitted is None:
                import logging

                logging.getLogger("automl").warning(too_few_images_message(len(sample)))
            self._derived[key] = fitted
        return self._derived[key]

    def ngram_table(self, ngrams: int = 2) -> NgramTable:
        """The n-gram bag's features and idf weights (`automl.spaces.ngrams.NgramTable`)
        for this spec's vocabulary and sequence length, fitted on `token_sample` once per
        choice."""
        from automl.spaces.ngrams import fit_ngrams

        length = int(self.input_shape[0])
        key = f"ngram_table_{self.vocab_size}_{length}_{ngrams}"
        if key not in self._derived:
            vocab = int(self.vocab_size or 1)
            self._derived[key] = fit_ngrams(self.token_sample, vocab, length, ngrams)
        return self._derived[key]

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps in one epoch at `batch_size`."""
        return max(1, -(-self.n_train // batch_size))

    @property
    def output_units(self) -> int:
        """Units of the output layer: one per class, or one for regression."""
        return 1 if self.task == "regression" else self.num_classes

    def inputs(self) -> tuple[keras.KerasTensor, keras.KerasTensor]:
        """The raw model input and the preprocessed tensor a space builds on.

        Preprocessing lives inside the model (pixels rescaled to [0, 1], features
        standardized with training-split statistics, token ids passed as they are), so
        the exported model takes raw data.
        """
        import keras

        if self.kind == "text":
            raw = keras.Input(self.input_shape, dtype="int32", name="raw_input")
            return raw, raw
        if self.kind == "image":
            return self._image_inputs()
        raw = keras.Input(self.input_shape, name="raw_input")
        features = raw
        if self.categories:  # the category ids at the end are not quantities
            from automl.spaces.layers import Columns

            features = Columns(0, self._n_features, name="features")(raw)
        if self.normalization is not None:
            mean, variance = self.normalization
            return raw, keras.layers.Normalization(
                mean=mean, variance=np.maximum(variance, 1e-12), name="normalize"
            )(features)
        return raw, features

    def _image_inputs(self) -> tuple[keras.KerasTensor, keras.KerasTensor]:
        """Raw pixels rescaled to [0, 1], averaged down by `downsample` when above 1."""
        import keras

        height, width, *channels = self.input_shape
        factor = self.downsample
        raw = keras.Input((height * factor, width * factor, *channels), name="raw_input")
        x = keras.layers.Rescaling(1.0 / 255, name="rescale")(raw)
        if factor > 1:
            x = keras.layers.AveragePooling2D(factor, name="explore_downsample")(x)
        return raw, x

    def downsampled(self, factor: int) -> ModelSpec:
        """This image spec at 1/factor of its side: models take the same raw images and
        average them down inside (`inputs()`).

        Layers fitted to the data (patch whitening) see the sample averaged down alike;
        that sample and what is fitted to it are computed once per spec and factor.

        Raises:
            ValueError: A factor under 2, not a full-size image spec, or sides that
                `factor` does not divide.
        """
        if factor < 2 or self.kind != "image" or self.downsample != 1:
            raise ValueError(
                f"cannot downsample a {self.kind} spec (downsample {self.downsample}) by "
                f"{factor}: only full-size image specs, by 2 or more"
            )
        height, width, *channels = self.input_shape
        if height % factor or width % factor:
            raise ValueError(f"cannot downsample {height}x{width} images by {factor}")
        key = f"downsampled_{factor}"
        if key not in self._derived:  # (sample, the small spec's own derived facts)
            self._derived[key] = (_average_down(self.image_sample, factor), {})
        sample, derived = self._derived[key]
        return dataclasses.replace(
            self,
            input_shape=(height // factor, width // factor, *channels),
            downsample=factor,
            image_sample=sample,
            _derived=derived,  # not the full-size sample's patch whitening
        )

    @property
    def _n_features(self) -> int:
        """Width of a vector without its trailing category ids."""
        return int(self.input_shape[-1]) - len(self.categories)

    def category_ids(self, raw: keras.KerasTensor) -> keras.KerasTensor:
        """The category-id columns of `raw`, the input `inputs()` returned.

        Shape (batch, len(categories)), for `keras.layers.Embedding`; see `categories`.

        Raises:
            ValueError: The spec has no category ids (check `spec.categories` first).
        """
        from automl.spaces.layers import Columns

        if not self.categories:
            raise ValueError("this spec has no category ids; check spec.categories first")

        width = int(self.input_shape[-1])
        return Columns(self._n_features, width, name="category_ids")(raw)


def _average_down(sample: np.ndarray | None, factor: int) -> np.ndarray | None:
    """Images (n, H, W, C) averaged over factor x factor blocks, as float32."""
    if sample is None or not len(sample):
        return sample
    n, height, width = sample.shape[:3]
    blocks = sample.reshape(n, height // factor, factor, width // factor, factor, -1)
    return blocks.astype(np.float32).mean(axis=(2, 4))
