"""The model card: a short `MODEL.md` beside `best_model.keras`.

What lives here: the card's text, from the facts `automl.export` gathers (the summary,
the exported model, the dataset): the data it learned from, its validation and test
scores, its size and latency, the exact input it takes, and how to load it in each
export format, with snippets written for this model's inputs. What does not: choosing,
scoring and saving the model (`automl.export`), converting it (`automl.formats`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl.footprint import latency_ms
from automl.formats import FORMATS, cannot_hold

if TYPE_CHECKING:
    import keras

    from automl.data import Dataset

CARD_NAME = "MODEL.md"
MODEL_FILE = "best_model.keras"
NOT_MEASURED = "not measured"
EXAMPLE_VALUES = 16  # an input of at most this many values shows a real test row
TEXT_CHARS = 80  # an example text is cut here
CLASSES_SHOWN = 10
_RECURRENT = {"LSTM", "GRU", "SimpleRNN", "Bidirectional"}
_TITLES = {"keras": "Keras", "saved_model": "SavedModel", "onnx": "ONNX", "litert": "LiteRT"}


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """One input of the exported model.

    Attributes:
        key: The dict key `predict` takes (a table's column); None for a single input.
        name: The tensor's name: the feed name in ONNX and LiteRT.
        shape: Its shape without the batch dimension (None: any size).
        dtype: Keras' dtype name ("float32", "int64", "string").
    """

    key: str | None
    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def numpy_dtype(self) -> Any:
        """What a numpy array fed to it holds: `object` for strings."""
        return object if self.dtype == "string" else self.dtype


def write_model_card(out: Path, summary: dict[str, Any], model: keras.Model, data: Dataset) -> Path:
    """Write `OUT/MODEL.md` about the model exported to `OUT/best_model.keras`.

    Written beside and then moved into place, so a killed run never leaves half a card.

    Args:
        out: The output folder (holding `best_model.keras`).
        summary: The study's summary (what `summary.json` holds).
        model: The exported model, which takes raw data.
        data: The dataset it was searched on.

    Returns:
        The path written.
    """
    path = Path(out) / CARD_NAME
    text = model_card(summary, model, data, model_file=Path(out) / MODEL_FILE)
    partial = path.with_name(f".{CARD_NAME}.partial")
    partial.write_text(text)
    partial.replace(path)
    return path


def model_card(
    summary: dict[str, Any], model: keras.Model, data: Dataset, *, model_file: Path | None
) -> str:
    """The card's markdown (see `write_model_card`); `model_file` is the saved model,
    for its size and the formats that can hold it (None or missing: not known)."""
    inputs = model_inputs(model)
    example = example_input(inputs, model, data)
    saved = model_file if model_file is not None and model_file.is_file() else None
    parts = [
        _header(summary),
        _data_lines(data),
        _metric_lines(summary, data),
        _cost_lines(summary, model, saved, example),
        _input_lines(inputs, model, data, example),
        _load_lines(summary, model, inputs, saved),
    ]
    return "\n\n".join("\n".join(part) for part in parts) + "\n"


def model_inputs(model: keras.Model) -> list[ModelInput]:
    """The inputs `model` takes, in order: a dict's keyed by column, else positional."""
    structure = model.input
    if isinstance(structure, dict):
        pairs = list(structure.items())
    else:
        pairs = [(None, t) for t in (structure if isinstance(structure, list) else [structure])]
    return [
        ModelInput(key, str(tensor.name), tuple(tensor.shape[1:]), str(tensor.dtype))
        for key, tensor in pairs
    ]


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


def _header(summary: dict[str, Any]) -> list[str]:
    final = summary.get("final") or {}
    what = final.get("description") or f"trial {(summary.get('best') or {}).get('trial')}"
    return [
        f"# Model card: {summary.get('study')}",
        "",
        f"`{MODEL_FILE}` is {what} of study `{summary.get('study')}` (space "
        f"`{summary.get('space')}`), written by {_automl_version()} on "
        f"{time.strftime('%Y-%m-%d')}. All facts: `summary.json`.",
    ]


def _automl_version() -> str:
    """ "automl 0.4.0", from the installed package's metadata (the package root would
    import the engine)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"automl {version('automl')}"
    except PackageNotFoundError:
        return "automl"


def _data_lines(data: Dataset) -> list[str]:
    if data.task == "regression":
        task = "regression"
    else:
        task = f"classification, {data.num_classes} classes"
    lines = [
        "## Data",
        "",
        f"- `{data.name}`: {data.kind} data, {task}"
        + (f"; from `{data.source}`" if data.source else ""),
        f"- rows: {len(data.x_train):,} train, {len(data.x_val):,} validation, "
        f"{len(data.x_test):,} test",
    ]
    if data.task != "regression":
        lines.append(f"- classes (output order): {_class_list(data.class_names)}")
    return lines


def _class_list(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:CLASSES_SHOWN])
    more = len(names) - CLASSES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _metric_lines(summary: dict[str, Any], data: Dataset) -> list[str]:
    best = summary.get("best") or {}
    lines = ["## Metrics", ""]
    if best:
        training = ", ".join(
            text
            for text in (
                f"{best['epochs']} epochs" if best.get("epochs") is not None else "",
                f"{best['seconds']:.1f} s" if best.get("seconds") is not None else "",
            )
            if text
        )
        lines.append(
            f"- validation `{best.get('metric')}` (what the trials were ranked by): "
            f"{_number(best.get('val_metric'))}, trial {best.get('trial')}"
            + (f" ({training} of training)" if training else "")
        )
    final = summary.get("final") or {}
    scores = final.get("val_scores") or {}
    if len(final.get("members") or []) > 1 and "ensemble" in scores:
        lines.append(
            f"- validation {final.get('metric', '')} of the final model: "
            f"{_number(scores['ensemble'])}"
        )
    metrics = (summary.get("test") or {}).get("metrics") or {}
    if metrics:
        values = ", ".join(f"{k} {_number(v)}" for k, v in metrics.items())
        lines.append(f"- test ({len(data.x_test):,} rows, scored once): {values}")
    else:
        lines.append("- test: not scored" + ("" if len(data.x_test) else " (no test split)"))
    baseline = summary.get("baseline") or {}
    if baseline.get("line"):
        lines.append(f"- {baseline['line']}")
    trials = summary.get("trials") or {}
    if trials:
        lines.append(
            "- trials: " + ", ".join(f"{v} {k}" for k, v in trials.items() if k != "running")
        )
    return lines


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else NOT_MEASURED


def _cost_lines(
    summary: dict[str, Any], model: keras.Model, saved: Path | None, example: Any
) -> list[str]:
    best = summary.get("best") or {}
    size = f"{saved.stat().st_size / 1e6:.3f} MB" if saved is not None else None
    if size is None and best.get("size_mb") is not None:
        size = f"{best['size_mb']:.3f} MB (trial {best.get('trial')}'s network)"
    latency = latency_ms(model, example)
    lines = [
        "## Size and speed",
        "",
        f"- parameters: {model.count_params():,}",
        f"- `{MODEL_FILE}`: {size or NOT_MEASURED}",
        "- latency: "
        + (
            f"{latency:.2f} ms per example (median `predict_on_batch` on the one-row "
            f"input below, on the machine that wrote this card)"
            if latency is not None
            else NOT_MEASURED
        ),
    ]
    if best.get("latency_ms") is not None:
        lines.append(
            f"- latency of trial {best.get('trial')}'s network alone (no preprocessing, "
            f"measured in the search): {best['latency_ms']:.2f} ms per example"
        )
    return lines


def _input_lines(
    inputs: list[ModelInput], model: keras.Model, data: Dataset, example: Any
) -> list[str]:
    lines = ["## Input", ""]
    if inputs[0].key is not None:
        columns = ", ".join(f"`{i.key}` {i.dtype}" for i in inputs)
        lines += [
            f"A dict of {len(inputs)} raw columns, one `(n,)` array each, keyed by the "
            f'column name (NaN for a missing number, `""` for a missing text): {columns}. '
            "SavedModel, ONNX and LiteRT take them as `(n, 1)` arrays (`feeds` below).",
        ]
    else:
        lines += [
            f"`{i.name}`: {i.dtype} `{_shape(i.shape)}`, {_meaning(i, data)}." for i in inputs
        ]
    lines += ["", f"Output `output_0`: {_output(model, data)}.", "", "```python"]
    lines += _example_code(inputs, example, data)
    return [*lines, "```"]


def _shape(shape: tuple[int | None, ...]) -> str:
    if not shape:
        return "(n,)"
    return "(" + ", ".join(["n", *("any" if d is None else str(d) for d in shape)]) + ")"


def _meaning(item: ModelInput, data: Dataset) -> str:
    if item.dtype == "string":
        return "raw texts (an object array of `str`)"
    if data.kind == "image":
        return "RGB pixels 0-255, not rescaled (the model rescales)"
    if data.kind == "text":
        return "word ids, 0-padded at the end"
    return "raw values (the model normalizes them)"


def _output(model: keras.Model, data: Dataset) -> str:
    output = model.outputs[0]
    shape = f"{output.dtype} `{_shape(tuple(output.shape[1:]))}`"
    if data.task == "regression":
        return f"{shape}, the predicted value"
    return f"{shape}, class probabilities in the order of the classes above"


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
