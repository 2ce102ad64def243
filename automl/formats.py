"""A saved `.keras` model written again in a deployment format: Keras, TensorFlow
SavedModel, ONNX or LiteRT (TFLite), each loadable without automl or Keras.

What lives here: the table of formats, the check that a model's preprocessing fits a
format (string lookups and text vectorization need TensorFlow's string and hash-table
ops, which ONNX and LiteRT's built-in ops lack), and the writers. Which model a study
exports (its final model or a trial's) is `automl.export`'s business.

This module is the one TensorFlow adapter for exports: SavedModel, the ONNX converter
(tf2onnx) and the LiteRT converter all trace the model as a TensorFlow graph.
Every writer writes beside the target and moves the result into place at the end, so a
refused or failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl._errors import UsageError
from automl._model_input import model_input
from automl.models import load_model

if TYPE_CHECKING:
    import keras

logger = logging.getLogger("automl")

# Exported predictions agree with the `.keras` model's within this (numpy.allclose:
# |a - b| <= ATOL + RTOL * |b|): float32 graphs whose ops are fused or reordered differ
# by a few ulps, nowhere near a changed decision.
ATOL = 1e-4
RTOL = 1e-4

# ONNX opset 17 (onnxruntime 1.14 and later): ScatterND's reduction="add" needs 16.
OPSET = 17

EXTRA_HINT = "pip install 'automl[export]'"


@dataclasses.dataclass(frozen=True)
class Format:
    """One export format.

    Attributes:
        name: What `--format` takes.
        file_name: The name it gets inside a target folder.
        suffix: A target path ending in it is the file itself ("" for a folder format).
        runtime: What loads it (`automl export` says so after writing).
        needs: The modules its writer imports (from the `export` extra).
        holds_strings: Whether it holds string inputs, lookups and text vectorization.
    """

    name: str
    file_name: str
    suffix: str
    runtime: str
    needs: tuple[str, ...] = ()
    holds_strings: bool = True


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("keras", "best_model.keras", ".keras", "keras.models.load_model"),
        Format("saved_model", "best_model_saved_model", "", "tf.saved_model.load"),
        Format(
            "onnx",
            "best_model.onnx",
            ".onnx",
            "onnxruntime.InferenceSession",
            needs=("tf2onnx", "onnx", "onnxruntime"),
            holds_strings=False,
        ),
        Format(
            "litert",
            "best_model.tflite",
            ".tflite",
            "ai_edge_litert.interpreter.Interpreter",
            holds_strings=False,
        ),
    )
}

# Preprocessing layers made of hash tables and string ops: only Keras and SavedModel
# hold them (tf2onnx writes a broken graph, LiteRT needs the Flex delegate).
_STRING_LAYERS = ("StringLookup", "IntegerLookup", "TextVectorization", "Hashing", "HashedCrossing")


def check_format(name: str) -> Format:
    """The format called `name`.

    Raises:
        UsageError: For an unknown name, listing the valid ones.
    """
    if name not in FORMATS:
        raise UsageError(f"{{format}} must be one of {', '.join(FORMATS)}, but got {name!r}.")
    return FORMATS[name]


def target_path(target: Path, fmt: Format) -> Path:
    """Where an export to `target` goes: `target` itself when it ends in the format's
    suffix (a file format), else `target/<fmt.file_name>`.

    Raises:
        UsageError: When `target` ends in another format's suffix, or is a file where a
            folder is meant.
    """
    if fmt.suffix and target.suffix == fmt.suffix:
        return target
    others = {f.suffix: f.name for f in FORMATS.values() if f.suffix and f is not fmt}
    if target.suffix in others:
        raise UsageError(
            f"{{out}} ends in {target.suffix} (the {others[target.suffix]} format's suffix), "
            f"but {{format}} is {fmt.name}: give a folder"
            f"{' or a path ending in ' + fmt.suffix if fmt.suffix else ''}."
        )
    if target.is_file():
        raise UsageError(f"{{out}} {target} is a file; {fmt.name} goes into a folder there.")
    return target / fmt.file_name


def cannot_hold(source: Path, fmt: Format) -> list[str]:
    """The layers of the `.keras` model at `source` (nested models included) that `fmt`
    cannot hold, as "name (ClassName)".

    Read from the file's config, without Keras: a refusal costs no TensorFlow import.
    """
    if fmt.holds_strings:
        return []
    with zipfile.ZipFile(source) as archive:
        config = json.loads(archive.read("config.json"))
    layers, inputs = [], []
    for layer in _layer_configs(config):
        kind, options = layer["class_name"], layer.get("config") or {}
        name = options.get("name", "?")
        if kind in _STRING_LAYERS:
            layers.append(f"{name} ({kind})")
        elif kind == "InputLayer" and "string" in str(options.get("dtype")):
            inputs.append(f"{name} (an input of strings)")
    return layers + inputs  # the preprocessing layer says more than its input


def _layer_configs(node: Any) -> list[dict[str, Any]]:
    """Every serialized layer in a Keras config, depth first."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str) and "config" in node:
            found.append(node)
        for value in node.values():
            found.extend(_layer_configs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_layer_configs(value))
    return found


def write_format(source: Path, target: Path, name: str) -> Path:
    """Write the `.keras` model at `source` in format `name` at `target` (a path with the
    format's suffix, or a folder for `best_model.<suffix>`).

    Raises:
        UsageError: For an unknown format, a missing converter, or a model whose
            preprocessing the format cannot hold; nothing is written then.

    Returns:
        The path written.
    """
    fmt = check_format(name)
    path = target_path(target, fmt)
    if fmt.name == "keras":  # a copy: no TensorFlow import, so `automl export` stays quick
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        shutil.copyfile(source, partial)
        partial.replace(path)
        return path
    refused = cannot_hold(source, fmt)
    if refused:
        able = ", ".join(f.name for f in FORMATS.values() if not cannot_hold(source, f))
        raise UsageError(
            f"{fmt.name} cannot hold the preprocessing layer {refused[0]} of this model; "
            f"export it as {able} instead."
        )
    _require(fmt)
    _require_tensorflow_backend(fmt)
    model = load_model(source, compile=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch:
        partial = Path(scratch) / path.name
        with _quiet_converters():
            _WRITERS[fmt.name](model, partial)
        _check_agrees(model, partial, fmt)
        _move_into_place(partial, path)
    return path


def _check_agrees(model: keras.Model, path: Path, fmt: Format) -> None:
    """Run the written file with its runtime on probe inputs and compare with Keras: a
    converter that mistranslates an op is refused here, not found in production.

    Raises:
        UsageError: When the predictions differ by more than the tolerance.
    """
    import keras

    probe = _probe_inputs(model)
    expected = keras.ops.convert_to_numpy(model(probe, training=False))
    got = _RUNNERS[fmt.name](path, probe, model)
    if got.shape != expected.shape or not np.allclose(got, expected, atol=ATOL, rtol=RTOL):
        gap = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else np.inf
        others = " or ".join(f.name for f in FORMATS.values() if f.holds_strings and f != fmt)
        raise UsageError(
            f"{fmt.name} predicts differently from the Keras model (largest difference "
            f"{gap:.3g}, tolerance {ATOL:g} + {RTOL:g} x |value|): its converter "
            f"mistranslates an op of this model; export it as {others} instead."
        )


def _probe_inputs(model: keras.Model) -> Any:
    """Three rows of small values shaped like each input: small token ids (valid for
    any vocabulary), floats in [0, 4), a few words."""
    rng = np.random.default_rng(0)

    def probe(tensor: Any) -> np.ndarray:
        shape = [3 if i == 0 else (d or 8) for i, d in enumerate(tensor.shape)]
        if "string" in str(tensor.dtype):
            return rng.choice(np.array(["", "a", "the b"], dtype=object), size=shape)
        dtype = np.dtype(str(tensor.dtype))
        if np.issubdtype(dtype, np.integer):
            return rng.integers(0, 4, size=shape).astype(dtype)
        return rng.uniform(0, 4, size=shape).astype(dtype)

    structure = model_input(model)
    if isinstance(structure, dict):
        return {key: probe(tensor) for key, tensor in structure.items()}
    return probe(structure)


def _feeds(names: list[str], probe: Any, model: keras.Model) -> dict[str, np.ndarray]:
    """The probe keyed by a runtime's input names: the dict key or the Keras input name
    of each column; a single input under the one name."""
    if not isinstance(probe, dict):
        return {names[0]: probe}
    by_name = {**{t.name: probe[k] for k, t in model.input.items()}, **probe}
    return {name: by_name[name] for name in names}


def _run_saved_model(path: Path, probe: Any, model: keras.Model) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # kept in a name: `serve` needs it alive
    return np.asarray(loaded.serve(probe))


def _run_onnx(path: Path, probe: Any, model: keras.Model) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return np.asarray(session.run(["output_0"], _feeds(names, probe, model))[0])


def _run_litert(path: Path, probe: Any, model: keras.Model) -> np.ndarray:
    """LiteRT's interpreter (TensorFlow's where ai-edge-litert is not installed), row by
    row when the file was written for one row at a time."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # not built for every platform (Windows)
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806 - a class, named as one
    runner = Interpreter(model_path=str(path)).get_signature_runner()
    details = runner.get_input_details()
    feeds = _feeds(list(details), probe, model)
    if next(iter(details.values()))["shape_signature"][0] != 1:
        return np.asarray(runner(**feeds)["output_0"])
    rows = len(next(iter(feeds.values())))
    parts = [runner(**{k: v[i : i + 1] for k, v in feeds.items()})["output_0"] for i in range(rows)]
    return np.concatenate(parts)


def _require_tensorflow_backend(fmt: Format) -> None:
    """The writers trace the model as a TensorFlow graph: other backends are refused."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise UsageError(
            f"exporting to {fmt.name} traces the model with TensorFlow, but Keras runs on "
            f"{keras.backend.backend()}: run `automl export` with KERAS_BACKEND=tensorflow."
        )


@contextlib.contextmanager
def _quiet_converters() -> Iterator[None]:
    """Silence the converters' Python loggers while they run: tf2onnx logs every op it
    cannot convert and goes on (the check after writing decides), TensorFlow logs its
    deprecations."""
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow")]
    levels = [item.level for item in loggers]
    for item in loggers:
        item.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for item, level in zip(loggers, levels, strict=True):
            item.setLevel(level)


def _require(fmt: Format) -> None:
    """Raise a one-line UsageError when the format's converter is not installed."""
    absent = [module for module in fmt.needs if importlib.util.find_spec(module) is None]
    if absent:
        raise UsageError(
            f"exporting to {fmt.name} needs {' and '.join(absent)} (not installed here): "
            f"{EXTRA_HINT}"
        )


def _move_into_place(partial: Path, path: Path) -> None:
    """Replace `path` by `partial` (a file or a folder) with renames only."""
    if not path.is_dir():
        os.replace(partial, path)
        return
    old = partial.with_name(partial.name + ".old")
    os.replace(path, old)  # a folder cannot be replaced in one rename
    os.replace(partial, path)
    shutil.rmtree(old, ignore_errors=True)


def _write_saved_model(model: keras.Model, path: Path) -> None:
    """A SavedModel whose `serve` endpoint takes the model's raw input.

    Keras' `model.export` serves `model.__call__` without `training=False`, so a random
    augmentation layer inside the model (the image recipe's flips and shifts) would run
    at serving time; the endpoint here is the inference call.
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda inputs: model(inputs, training=False),
        input_signature=[_input_specs(model)],
    )
    archive.write_out(str(path), verbose=False)


def _write_litert(model: keras.Model, path: Path) -> None:
    """A `.tflite` file of LiteRT's built-in ops only, for any number of rows; or, when
    that does not convert (recurrent layers need static shapes), for one row at a time.

    Keras would fall back to TensorFlow's ops (the Flex delegate), which the LiteRT
    runtime lacks; with built-ins only, a model it cannot run fails here instead.
    """
    import keras
    import tensorflow as tf

    builtins = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    try:
        model.export(str(path), format="litert", verbose=False, target_spec=builtins)
        return
    except Exception:  # noqa: BLE001 - retried below with one row, which says why if it fails
        pass

    def one_row(tensor: Any) -> keras.InputSpec:
        return keras.InputSpec(shape=(1, *tensor.shape[1:]), dtype=tensor.dtype)

    signature = [keras.tree.map_structure(one_row, model_input(model))]
    try:
        model.export(
            str(path),
            format="litert",
            verbose=False,
            input_signature=signature,
            target_spec=builtins,
        )
    except Exception as exc:  # noqa: BLE001 - the converter's errors are many and long
        raise UsageError(
            f"litert cannot hold this model: {_first_line(exc)}; export it as keras or "
            f"saved_model instead."
        ) from exc
    logger.warning(
        "the LiteRT model takes one row at a time: its layers convert only with static shapes"
    )


def _write_onnx(model: keras.Model, path: Path) -> None:
    """An ONNX graph with the model's inputs named as its Keras inputs and one output,
    `output_0`.

    Keras' own ONNX export turns tensors its layers hold as constants (Normalization's
    mean and variance) into extra graph inputs; freezing the traced graph first keeps
    them inside.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    specs = _input_specs(model)
    function = tf.function(lambda inputs: model(inputs, training=False))
    concrete = function.get_concrete_function(specs)
    flat = tf.nest.flatten(specs)
    inputs = [t.name for t in concrete.inputs[: len(flat)]]
    outputs = [t.name for t in concrete.outputs]
    frozen = _scatter_as_add(_erfc_as_erf(tf_loader.from_function(concrete, inputs, outputs)))
    renames = {t: spec.name for t, spec in zip(inputs, flat, strict=True)}
    renames.update({t: f"output_{i}" for i, t in enumerate(outputs)})
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen,
            input_names=inputs,
            output_names=outputs,
            tensors_to_rename=renames,
            opset=OPSET,
            output_path=str(path),
        )
        onnx.checker.check_model(proto)  # an op left unconverted has no ONNX schema
    except Exception as exc:  # noqa: BLE001 - tf2onnx and onnx raise bare exceptions
        raise UsageError(
            f"onnx cannot hold this model: {_first_line(exc)}; export it as keras or "
            f"saved_model instead."
        ) from exc


def _erfc_as_erf(graph: Any) -> Any:
    """The frozen graph with each `Erfc(x)` (exact GELU) spelled `1 - Erf(x)`: ONNX has
    Erf, not Erfc, and tf2onnx has no rule for it."""
    import tensorflow as tf

    for node in [n for n in graph.node if n.op == "Erfc"]:
        name, dtype = node.name, node.attr["T"].type
        node.name, node.op = f"{name}/erf", "Erf"  # consumers now read the Sub below
        one = graph.node.add(name=f"{name}/one", op="Const")
        one.attr["dtype"].type = dtype
        one.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(1.0, dtype=tf.as_dtype(dtype)))
        sub = graph.node.add(name=name, op="Sub", input=[one.name, node.name])
        sub.attr["T"].type = dtype
    return graph


def _scatter_as_add(graph: Any) -> Any:
    """The frozen graph with each `ScatterNd` (which sums updates to one index) spelled
    `TensorScatterAdd` on zeros: tf2onnx turns ScatterNd into ONNX's ScatterND without a
    reduction, where the last update to an index wins (a bag of words would count once)."""
    import tensorflow as tf

    for node in [n for n in graph.node if n.op == "ScatterNd"]:
        indices, updates, shape = list(node.input)
        dtype, index_type = node.attr["T"].type, node.attr["Tindices"].type
        zero = graph.node.add(name=f"{node.name}/zero", op="Const")
        zero.attr["dtype"].type = dtype
        zero.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(0, dtype=tf.as_dtype(dtype)))
        zeros = graph.node.add(name=f"{node.name}/zeros", op="Fill", input=[shape, zero.name])
        zeros.attr["T"].type = dtype
        zeros.attr["index_type"].type = index_type
        node.op = "TensorScatterAdd"
        node.input[:] = [zeros.name, indices, updates]
    return graph


def _input_specs(model: keras.Model) -> Any:
    """`tf.TensorSpec`s shaped like the model's inputs, named as its Keras inputs."""
    import tensorflow as tf

    def spec(tensor: Any) -> Any:
        return tf.TensorSpec(tensor.shape, tensor.dtype, name=tensor.name)

    return tf.nest.map_structure(spec, model_input(model))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_WRITERS = {"saved_model": _write_saved_model, "onnx": _write_onnx, "litert": _write_litert}
_RUNNERS = {"saved_model": _run_saved_model, "onnx": _run_onnx, "litert": _run_litert}
