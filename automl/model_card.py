"""The model card: a short `MODEL.md` beside `best_model.keras`.

What lives here: the card's text, from the facts `automl.export` gathers (the summary,
the exported model, the dataset): the data it learned from, its validation and test
scores, its size and latency, the exact input it takes. The example input and the
snippets that load the model in each export format, written for this model's inputs,
are `automl._card_code`'s. What does not: choosing, scoring and saving the model
(`automl.export`), converting it (`automl.formats`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl._card_code import _example_code, _load_lines, _meaning, example_input
from automl._model_input import model_input
from automl.footprint import latency_ms

if TYPE_CHECKING:
    import keras

    from automl.data import Dataset

CARD_NAME = "MODEL.md"
MODEL_FILE = "best_model.keras"
NOT_MEASURED = "not measured"
CLASSES_SHOWN = 10


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
    structure = model_input(model)
    if isinstance(structure, dict):
        pairs = list(structure.items())
    else:
        pairs = [(None, t) for t in (structure if isinstance(structure, list) else [structure])]
    return [
        ModelInput(key, str(tensor.name), tuple(tensor.shape[1:]), str(tensor.dtype))
        for key, tensor in pairs
    ]


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
    chosen = final.get("chosen") or ("ensemble" if len(final.get("members") or []) > 1 else "")
    if chosen in scores and chosen != "best":  # the best alone: the line above
        lines.append(
            f"- validation {final.get('metric', '')} of the final model "
            f"({final.get('description', chosen)}): {_number(scores[chosen])}"
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


def _output(model: keras.Model, data: Dataset) -> str:
    output = model.outputs[0]
    shape = f"{output.dtype} `{_shape(tuple(output.shape[1:]))}`"
    if data.task == "regression":
        return f"{shape}, the predicted value"
    return f"{shape}, class probabilities in the order of the classes above"
