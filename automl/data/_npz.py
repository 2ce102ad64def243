"""`.npz` files of arrays: `x_train`, `y_train`, and optionally `x_test`, `y_test`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from automl._errors import UsageError
from automl.data._dataset import Dataset


def load_npz(path: Path, *, task: str | None = None, seed: int | None = 0) -> Dataset:
    """Load arrays saved with `np.savez`; what `x` holds follows from its rank.

    (n, features) are vectors, (n, steps, features) sequences, (n, H, W, C) images with
    0-255 pixels. Without `x_test`/`y_test`, a fixed stratified 20 % is held out to
    score the final model. Pickled (object) arrays are refused: loading them could run
    code.

    Raises:
        UsageError: On a missing file, missing or mismatched arrays, or object arrays.
    """
    from automl.data._arrays import _KIND_BY_RANK, from_arrays
    from automl.data._split import split_dataset
    from automl.data._targets import encode_target

    if not path.is_file():
        raise UsageError(f"no such file: {path}; check the path.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:
        raise UsageError(
            f"{path} holds object arrays, which automl does not unpickle; save numeric "
            f"arrays (np.savez(path, x_train=..., y_train=...))."
        ) from exc
    except OSError as exc:
        raise UsageError(f"{path} is not a readable .npz file ({exc}).") from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    has_test = [k in arrays for k in ("x_test", "y_test")]
    if missing or any(has_test) != all(has_test):
        raise UsageError(
            f"{path} holds {', '.join(sorted(arrays)) or 'no arrays'}; it needs x_train and "
            f"y_train, and x_test with y_test together if it has a test split."
        )
    if not all(has_test):
        data = from_arrays(arrays["x_train"], arrays["y_train"], task=task, name=path.stem)
        data.source = str(path)
        return data
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UsageError(
            f"{path}: x_train rows have shape {x_train.shape[1:]} but x_test rows "
            f"{x_test.shape[1:]}; they must match."
        )
    for x_name, y_name in (("x_train", "y_train"), ("x_test", "y_test")):
        if len(arrays[x_name]) != len(arrays[y_name]):
            raise UsageError(
                f"{path}: {x_name} has {len(arrays[x_name])} rows but {y_name} "
                f"{len(arrays[y_name])}; they must match."
            )
    n = len(x_train)
    y, class_names, task = encode_target(
        np.concatenate([arrays["y_train"], arrays["y_test"]]), task, what=f"y in {path}"
    )
    kind = _KIND_BY_RANK.get(x_train.ndim)
    if kind is None:
        raise UsageError(
            f"{path}: x_train has shape {x_train.shape}; expected (n, features), (n, steps, "
            f"features) or (n, height, width, channels)."
        )
    dtype = "uint8" if kind == "image" and x_train.dtype == np.uint8 else "float32"
    return split_dataset(
        path.stem,
        kind,
        class_names,
        (x_train.astype(dtype), y[:n]),
        (x_test.astype(dtype), y[n:]),
        seed=seed,
        source=str(path),
    )
