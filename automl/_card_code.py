"""The model card's code: the example input and the snippets that load the model.

What lives here: one row as the exported model takes it (the first test row where it is
short, zeros of the input's shape elsewhere), that row as Python source, and the snippet
that loads the model and predicts on it in each export format (Keras, SavedModel, ONNX,
LiteRT), written for the model's inputs; a format that cannot hold the model is named
as such. What does not: the card's prose and assembly (`automl.model_card`), converting
the model (`automl.formats`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl.formats import FORMATS, cannot_hold

if TYPE_CHECKING:
    import keras

    from automl.data import Dataset
    from automl.model_card import ModelInput

EXAMPLE_VALUES = 16  # an input of at most this many values shows a real test row
TEXT_CHARS = 80  # an example text is cut here
_RECURRENT = {"LSTM", "GRU", "SimpleRNN", "Bidirectional"}
_TITLES = {"keras": "Keras", "saved_model": "SavedModel", "onnx": "ONNX", "litert": "LiteRT"}


def example_input(inputs: list[ModelInput], model: keras.Model, data: Dataset) -> Any:
    """One row as `model.predict` takes it: the first test (else validation) row where
    it is short (table columns, features, texts), zeros of the input's shape elsewhere
    (images, long sequences)."""
    row = _first_row(data, model)

    def one(item: ModelInput) -> np.ndarray:
        value = row.get(item.key) if isinstance(row, dict) else row
        shape = (1, *_concrete(item.shape, data))
        if value is not None and (item.dtype == "string" or math.prod(shape) <= EXAMPLE_VALUES):
            value = np.asarray(value)[:1]
            if value.size == math.prod(shape):
                return _cast(value.reshape(shape), item)
        if item.dtype == "string":
            return np.full(shape, "", dtype=object)
        return np.zeros(shape, dtype=item.dtype)

    arrays = [one(item) for item in inputs]
    if inputs[0].key is not None:
        return {item.key: array for item, array in zip(inputs, arrays, strict=True)}
    return arrays[0] if len(arrays) == 1 else arrays


def _first_row(data: Dataset, model: keras.Model) -> Any:
    """The first raw test (else validation) row as the model takes it; None for images
    (shown as zeros) or when there is none."""
    if data.kind == "image":
        return None
    part = (data.x_test if len(data.x_test) else data.x_val)[:1]
    if len(part) == 0:
        return None
    if hasattr(part, "columns"):  # a DataFrame: the model's columns in its dtypes
        from automl.data import table_input

        try:
            return table_input(part, model)
        except Exception:  # noqa: BLE001 - a model that does not take the table's columns
            return None
    return np.asarray(part)


def _concrete(shape: tuple[int | None, ...], data: Dataset) -> tuple[int, ...]:
    """`shape` with sizes for its free dimensions: the data's, else 32."""
    known = data.input_shape if len(data.input_shape) == len(shape) else (32,) * len(shape)
    return tuple(d if d is not None else (k or 32) for d, k in zip(shape, known, strict=True))


def _cast(value: np.ndarray, item: ModelInput) -> np.ndarray:
    if item.dtype == "string":
        return np.array([str(v) for v in value.reshape(-1)], dtype=object).reshape(value.shape)
    if np.issubdtype(np.dtype(item.dtype), np.integer):
        value = np.nan_to_num(np.asarray(value, dtype="float64"))  # a missing code: 0
    return value.astype(item.dtype)


def _example_code(inputs: list[ModelInput], example: Any, data: Dataset) -> list[str]:
    lines = ["import numpy as np", ""]
    if isinstance(example, dict):
        row = ", ".join(f"{_literal(k)}: {_literal(v.reshape(-1)[0])}" for k, v in example.items())
        lines.append(f"row = {{{row}}}  # the first test row")
        dtypes = {i.key: i.numpy_dtype for i in inputs}
        if len(set(map(str, dtypes.values()))) == 1:
            dtype = _dtype_code(inputs[0].numpy_dtype)
            lines.append(f"x = {{k: np.array([v], dtype={dtype}) for k, v in row.items()}}")
        else:
            pairs = ", ".join(f"{_literal(k)}: {_dtype_code(d)}" for k, d in dtypes.items())
            lines += [
                f"dtypes = {{{pairs}}}",
                "x = {k: np.array([v], dtype=dtypes[k]) for k, v in row.items()}",
            ]
        return lines
    arrays = example if isinstance(example, list) else [example]
    codes = [_array_code(a, i, data) for a, i in zip(arrays, inputs, strict=True)]
    if len(codes) == 1:
        return [*lines, f"x = {codes[0]}"]
    return [*lines, f"x = [{', '.join(codes)}]"]


def _array_code(array: np.ndarray, item: ModelInput, data: Dataset) -> str:
    dtype = _dtype_code(item.numpy_dtype)
    if item.dtype != "string" and not array.any() and array.size > EXAMPLE_VALUES:
        return f"np.zeros({array.shape}, dtype={dtype})  # one row of {_meaning(item, data)}"
    cut = item.dtype == "string" and any(len(str(v)) > TEXT_CHARS for v in array.flat)
    where = f"the first test row, cut to {TEXT_CHARS} characters" if cut else "the first test row"
    return f"np.array({_nested(array.tolist())}, dtype={dtype})  # {where}"


def _meaning(item: ModelInput, data: Dataset) -> str:
    if item.dtype == "string":
        return "raw texts (an object array of `str`)"
    if data.kind == "image":
        return "RGB pixels 0-255, not rescaled (the model rescales)"
    if data.kind == "text":
        return "word ids, 0-padded at the end"
    return "raw values (the model normalizes them)"


def _nested(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    return _literal(value)


def _literal(value: Any) -> str:
    """Python source for one value (numpy scalars included)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return json.dumps(value[:TEXT_CHARS], ensure_ascii=False)  # valid Python too
    if isinstance(value, float):
        return "np.nan" if math.isnan(value) else f"{value:.6g}"
    return repr(value)


def _dtype_code(dtype: Any) -> str:
    return "object" if dtype is object else f'"{dtype}"'


def _load_lines(
    summary: dict[str, Any], model: keras.Model, inputs: list[ModelInput], saved: Path | None
) -> list[str]:
    study = summary.get("study")
    lines = [
        "## Load it",
        "",
        "Run the snippets in this folder, after the one above. "
        f"`automl export {study} --format FORMAT --out .` (with the search's `--storage`) "
        "writes the other formats here. ONNX and LiteRT do not cast: feed the dtypes above.",
    ]
    custom = sorted(_layer_classes(model, automl_only=True))
    for name, fmt in FORMATS.items():
        refused = cannot_hold(saved, fmt) if saved is not None else []
        if refused:
            lines += [
                "",
                f"**{_TITLES[name]}**: cannot hold this model's {refused[0]}; use Keras or "
                f"SavedModel.",
            ]
            continue
        lines += ["", f"**{_TITLES[name]}** (`{fmt.file_name}`):", "", "```python"]
        lines += _LOADERS[name](fmt.file_name, inputs, custom)
        lines.append("```")
    if _layer_classes(model) & _RECURRENT:
        lines += [
            "",
            "Recurrent layers: when `automl export` says the LiteRT model takes one row at a "
            "time, call the runner row by row.",
        ]
    return lines


def _keras_loader(file: str, inputs: list[ModelInput], custom: list[str]) -> list[str]:
    if custom:
        return [
            f"import automl  # registers automl's layers ({', '.join(custom)})",
            f'model = automl.load_model("{file}")  # safe mode',
            "p = model.predict(x)",
        ]
    return [
        "import keras",
        f'model = keras.saving.load_model("{file}", safe_mode=True)',
        "p = model.predict(x)",
    ]


def _saved_model_loader(file: str, inputs: list[ModelInput], custom: list[str]) -> list[str]:
    return [
        "import tensorflow as tf",
        f'model = tf.saved_model.load("{file}")',
        *_feeds(inputs, rename=False),
        "p = model.serve(feeds).numpy()",
    ]


def _onnx_loader(file: str, inputs: list[ModelInput], custom: list[str]) -> list[str]:
    return [
        "import onnxruntime",
        f'session = onnxruntime.InferenceSession("{file}")',
        *_feeds(inputs),
        'p = session.run(["output_0"], feeds)[0]',
    ]


def _litert_loader(file: str, inputs: list[ModelInput], custom: list[str]) -> list[str]:
    return [
        "from ai_edge_litert.interpreter import Interpreter",
        f'runner = Interpreter(model_path="{file}").get_signature_runner()',
        *_feeds(inputs),
        'p = runner(**feeds)["output_0"]',
    ]


def _feeds(inputs: list[ModelInput], *, rename: bool = True) -> list[str]:
    """`feeds = ...`: `x` as a runtime takes it: table columns as `(n, 1)` arrays, under
    the inputs' tensor names with `rename` (ONNX, LiteRT: a column name's `/` is `_`);
    a single input under its name (SavedModel: `x` itself)."""
    if inputs[0].key is None:
        if not rename:
            return ["feeds = x"]
        if len(inputs) == 1:
            return [f"feeds = {{{_literal(inputs[0].name)}: x}}"]
        names = ", ".join(_literal(i.name) for i in inputs)
        return [f"feeds = dict(zip([{names}], x))"]
    renamed = {i.key: i.name for i in inputs if i.key != i.name} if rename else {}
    if not renamed:
        return ["feeds = {k: v.reshape(-1, 1) for k, v in x.items()}"]
    pairs = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in renamed.items())
    return [f"feeds = {{{{{pairs}}}.get(k, k): v.reshape(-1, 1) for k, v in x.items()}}"]


_LOADERS = {
    "keras": _keras_loader,
    "saved_model": _saved_model_loader,
    "onnx": _onnx_loader,
    "litert": _litert_loader,
}


def _layer_classes(model: keras.Model, *, automl_only: bool = False) -> set[str]:
    """The class names of `model`'s layers, nested models included; with `automl_only`,
    of automl's own layers only (they need `automl.load_model`)."""
    found: set[str] = set()
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        kind = type(layer)
        if not automl_only or kind.__module__.split(".")[0] == "automl":
            found.add(kind.__name__)
        stack.extend(getattr(layer, "layers", []))
        inner = getattr(layer, "forward_layer", None)  # Bidirectional's wrapped layer
        if inner is not None:
            stack.append(inner)
    return found
