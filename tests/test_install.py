"""The install a user gets: `pip install .` into a fresh virtual environment brings the
runtime only, and `automl search iris --trials 2` works there without the dev extra.

Slow: it installs TensorFlow, MLflow and the rest (from pip's cache or index) and prints
the install's time and size, the figures the README quotes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# In the dev extra (tests, benchmarks, PostgreSQL), never in the runtime.
NOT_IN_RUNTIME = (
    "pytest",
    "autokeras",
    "tensorboard",
    "selenium",
    "psycopg",
    "tf2onnx",
    "onnxruntime",
)
# What `pip install .` reads: the project file, the readme, the packages.
PACKAGED = ("pyproject.toml", "README.md", "automl", "search_spaces")


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new virtual environment with `pip install .` (no extras) of this checkout."""
    folder = tmp_path_factory.mktemp("fresh")
    # pip builds in the source folder (build/, *.egg-info): a copy keeps the checkout clean.
    source = folder / "source"
    source.mkdir()
    for name in PACKAGED:
        if (REPO / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    started = time.monotonic()
    done = subprocess.run(
        [venv / "bin" / "pip", "install", "--quiet", str(source)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"\npip install . took {time.monotonic() - started:.0f} s; {_size_mb(venv):.0f} MB")
    return venv


def test_the_runtime_install_leaves_out_the_dev_extra(fresh_venv):
    code = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    done = subprocess.run(
        [fresh_venv / "bin" / "python", "-c", code, *NOT_IN_RUNTIME],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_search_runs_in_the_fresh_install(fresh_venv, tmp_path):
    env = cli_env(AUTOML_RECYCLE_MB="0")
    done = subprocess.run(
        [fresh_venv / "bin" / "automl", "search", "iris", "--trials", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best trial" in done.stdout and (tmp_path / "mlflow.db").is_file()


def test_postgresql_without_its_extra_says_how_to_get_it(fresh_venv, tmp_path):
    done = subprocess.run(
        [fresh_venv / "bin" / "automl", "search", "iris", "--storage",
         "postgresql://bob:secret@127.0.0.1:1/automl"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert "pip install 'automl[postgres]'" in done.stderr and "secret" not in done.stderr
