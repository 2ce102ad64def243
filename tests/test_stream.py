"""Image folders over the memory budget: paths kept, pixels decoded batch by batch by a
keras.utils.PyDataset, the same search and export as in memory."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import automl
from automl import UsageError
from automl.data import load_data
from automl.data._stream import ImageBatches, StreamEncoder, memory_budget
from tests._fresh import assert_fresh_predictions_match
from tests.conftest import sqlite_url


@pytest.fixture
def folder(cifar_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """3 classes x 30 real CIFAR-10 JPEGs, one 40x40 PNG and one broken file, over a
    1 KB budget."""
    monkeypatch.setenv("AUTOML_MEMORY_BUDGET", "1K")
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "pics"
    for name in ("cat", "dog", "ship"):
        (root / name).mkdir(parents=True)
        for path in sorted((cifar_root / "cifar10" / "train" / name).glob("*.jpg"))[:30]:
            shutil.copy(path, root / name / path.name)
    Image.open(next((root / "dog").glob("*.jpg"))).resize((40, 40)).save(root / "dog" / "big.png")
    (root / "ship" / "broken.jpg").write_bytes(b"not an image")
    return root


def test_memory_budget_reads_sizes_and_rejects_garbage(monkeypatch):
    monkeypatch.setenv("AUTOML_MEMORY_BUDGET", "1.5G")
    assert memory_budget() == int(1.5 * 2**30)
    monkeypatch.setenv("AUTOML_MEMORY_BUDGET", "800mb")
    assert memory_budget() == 800 * 2**20
    monkeypatch.delenv("AUTOML_MEMORY_BUDGET")
    assert memory_budget() > 2**20  # a quarter of physical memory
    monkeypatch.setenv("AUTOML_MEMORY_BUDGET", "lots")
    message = "AUTOML_MEMORY_BUDGET must be a size like 800M or 2G, but got 'lots'"
    with pytest.raises(UsageError, match=message):
        memory_budget()


def test_a_folder_over_budget_keeps_paths_and_streams_batches(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="automl"):
        data = load_data(str(folder))
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped 1 unreadable image files" in warnings
    assert "2 different sizes; each is resized to 32x32" in warnings
    assert isinstance(data.encoder, StreamEncoder) and data.encoder.resize
    assert data.x_train.dtype == object and str(data.x_train[0]).endswith((".jpg", ".png"))
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 91
    encoded = data.encode(None)
    assert encoded.input_shape == (32, 32, 3) and encoded.stream is not None

    batches = encoded.stream(data.x_train, data.y_train, 16, shuffle=True)
    assert isinstance(batches, ImageBatches) and len(batches) == -(-len(data.x_train) // 16)
    pixels, labels = batches[0]
    assert pixels.shape == (16, 32, 32, 3) and pixels.dtype == np.uint8 and pixels.max() > 0
    first = list(batches.order)
    batches.on_epoch_end()
    assert list(batches.order) != first  # reshuffled every epoch
    row = first[0]
    assert np.array_equal(data.encoder.decode([data.x_train[row]])[0], pixels[0])


@pytest.mark.slow
def test_a_streamed_folder_searches_and_exports_a_pixel_model(folder, tmp_path):
    result = automl.search(
        str(folder),
        space="cnn",
        trials=2,
        max_epochs=1,
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri=None,
        out=tmp_path / "out",
    )
    assert result.summary["trials"]["complete"] == 2
    # The exported model, on the test split's decoded pixels, scores the reported accuracy.
    data = load_data(str(folder))
    model = automl.load_model(tmp_path / "out" / "best_model.keras")
    test_pixels = data.encoder.decode(list(data.x_test))
    accuracy = float(np.mean(model.predict(test_pixels, verbose=0).argmax(axis=1) == data.y_test))
    assert accuracy == pytest.approx(result.summary["test"]["metrics"]["accuracy"])
    # Any size is resized inside; a fresh process predicts what the search's model does.
    pixels = np.random.default_rng(0).integers(0, 256, (2, 50, 44, 3)).tolist()
    fresh = assert_fresh_predictions_match(
        tmp_path / "out" / "best_model.keras", f"np.array({pixels}, dtype='uint8')", tmp_path
    )
    assert fresh.shape == (2, 3)
    here = result.best_model.predict(np.array(pixels, dtype="uint8"), verbose=0)
    np.testing.assert_allclose(fresh, here, atol=1e-5)


def test_stream_encoder_decodes_unreadable_files_as_black(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    pixels = StreamEncoder(8, 8, 3).decode([str(tmp_path / "broken.jpg")])
    assert pixels.shape == (1, 8, 8, 3) and not pixels.any()
