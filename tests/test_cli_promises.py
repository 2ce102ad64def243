"""README promises checked through the `automl` command itself: resume refusals, a space
whose first trials all fail, --subset, --sampler/--pruner, --patience, bad .npz and CSV
files, YAML space configs with Python tags, and a corrupt SQLite storage file.

Every check runs the real command in a subprocess on tiny data (iris, a few rows)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest

from tests.conftest import cli_env, run_cli, sqlite_url

SLOW = pytest.mark.slow  # cases beyond the default suite's 15 minutes


def _files_in(folder: Path) -> list[str]:
    """Flags that put the study and the outputs in `folder`, with MLflow off (it is not
    what these tests are about, and it costs seconds per run)."""
    return [
        "--storage",
        sqlite_url(folder / "automl.db"),
        "--tracking-uri",
        "none",
        "--out",
        str(folder / "out"),
    ]


def _one_line_error(done: subprocess.CompletedProcess[str], fragment: str) -> str:
    """Exit 2 and the error as the last line of stderr, one line, with `fragment`, and no
    traceback. (A search may have printed progress before it stopped, so stdout and the
    TensorFlow banner on stderr are not checked here.)"""
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("automl: error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert fragment in errors[0], errors[0]
    return errors[0]


def _study(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=sqlite_url(folder / "automl.db"))


# -- resume ----------------------------------------------------------------------------------


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_resume_is_refused_for_another_dataset_or_space(tmp_path):
    """README (Resume): a study remembers its dataset and space and refuses to resume
    with others: exit 2, one line naming both, and the study keeps its one trial."""
    first = ["--study", "mine", "--trials", "1", "--max-epochs", "1", *_files_in(tmp_path)]
    done = run_cli("search", "iris", *first, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    more = [arg if arg != "1" else "2" for arg in first]  # --trials 2: one more would run
    other_dataset = run_cli("search", "wine", *more, cwd=tmp_path)
    _one_line_error(other_dataset, "study 'mine' was created for dataset 'iris', not 'wine'")
    other_space = run_cli("search", "iris", "--space", "mlp", *more, cwd=tmp_path)
    _one_line_error(other_space, "study 'mine' was created for space 'auto', not 'mlp'")
    assert len(_study(tmp_path, "mine").trials) == 1


# -- a space whose first trials all fail -------------------------------------------------------


def test_a_space_whose_first_3_trials_fail_stops_with_exit_2(tmp_path):
    """README (Mistakes in a space): if the first 3 trials all fail, the search stops with
    exit 2, naming the reason, and runs no fourth trial."""
    (tmp_path / "broken.py").write_text(
        "def build(hp):\n    hp.Int('units', 8, 64)\n    raise ValueError('this space is broken')\n"
    )
    done = run_cli(
        "search", "iris", "--space", "broken.py:build", "--trials", "6", *_files_in(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    _one_line_error(done, "this space is broken")
    study = _study(tmp_path, "iris-broken.build")
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3


# -- --subset ----------------------------------------------------------------------------------


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_subset_trains_trials_on_a_fraction(tmp_path):
    """`--subset 0.5`: each trial records fidelity 0.5 (no promotion before 3 complete)."""
    done = run_cli(
        "search", "iris", "--subset", "0.5", "--trials", "2", "--max-epochs", "1",
        *_files_in(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _study(tmp_path, "iris-auto").trials
    assert [t.user_attrs.get("fidelity") for t in trials] == [0.5, 0.5]
    assert not any("promoted_from" in t.user_attrs for t in trials)


@pytest.mark.parametrize("value", ["0", "1", "1.5"])
def test_subset_outside_0_1_is_a_usage_error(tmp_path, value):
    done = run_cli("search", "iris", "--subset", value, *_files_in(tmp_path), cwd=tmp_path)
    _one_line_error(done, "--subset must be a fraction between 0 and 1 (e.g. 0.25), but got")
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


# -- --sampler, --pruner, --patience ---------------------------------------------------------

# Runs `automl.cli.main(argv)` as the command does, and writes down the name, sampler and
# pruner of each study the run creates (measuring the machine makes a throwaway one).
# The study, its storage and the search are all real; the wrapper only looks at what
# `optuna.create_study` returned.
WATCHED_MAIN = """
import json, sys
import optuna
from automl.cli import main

seen = []
create_study = optuna.create_study

def watched(*args, **kwargs):
    study = create_study(*args, **kwargs)
    seen.append([study.study_name, type(study.sampler).__name__, type(study.pruner).__name__])
    return study

optuna.create_study = watched
try:
    code = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        json.dump(seen, f)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("sampler", "pruner", "classes"),
    [
        pytest.param("random", "median", ["RandomSampler", "MedianPruner"], marks=SLOW),
        pytest.param("qmc", "sha", ["QMCSampler", "SuccessiveHalvingPruner"], marks=SLOW),
    ],
)
def test_sampler_and_pruner_flags_choose_the_studys_classes(tmp_path, sampler, pruner, classes):
    """`--sampler` and `--pruner` decide what the study samples and prunes with."""
    seen = tmp_path / "seen.json"
    argv = ["search", "iris", "--sampler", sampler, "--pruner", pruner, "--trials", "1"]
    argv += ["--max-epochs", "1", *_files_in(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-c", WATCHED_MAIN, str(seen), *argv],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    studies = {name: rest for name, *rest in json.loads(seen.read_text())}
    assert studies["iris-auto"] == classes


FLAT_SPACE = textwrap.dedent("""
    import keras

    def build(hp):
        # A learning rate of 0: the weights never move, so val_accuracy never improves
        # after the first epoch and early stopping alone decides how many epochs run.
        inputs = keras.Input((4,))
        x = keras.layers.Dense(hp.Choice("units", [8]), activation="relu")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
        model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model
""")


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_patience_decides_when_a_flat_trial_stops(tmp_path):
    """`--patience 1` stops a trial that never improves after its second epoch (the
    default patience for --max-epochs 8, max(3, 8 // 5) = 3, would run 4)."""
    (tmp_path / "flat.py").write_text(FLAT_SPACE)
    done = run_cli(
        "search", "iris", "--space", "flat.py:build", "--patience", "1", "--max-epochs", "8",
        "--pruner", "none", "--trials", "1", *_files_in(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (trial,) = _study(tmp_path, "iris-flat.build").trials
    assert trial.state.name == "COMPLETE"
    assert trial.user_attrs["epochs"] == 2


# -- bad input files ----------------------------------------------------------------------------


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


NPZ_MISTAKES = {
    "missing_y": ({"x_train": np.zeros((20, 3))}, "y_train"),
    "object_x": (
        {"x_train": np.array([[1], "a"] * 10, dtype=object), "y_train": np.arange(20) % 2},
        "object",
    ),
    "lengths": ({"x_train": np.zeros((20, 3)), "y_train": np.arange(19) % 2}, "20"),
    "test_without_y": (
        {"x_train": np.zeros((20, 3)), "y_train": np.arange(20) % 2, "x_test": np.zeros((5, 3))},
        "y_test",
    ),
}


@pytest.mark.parametrize(
    "case", [c if c == "missing_y" else pytest.param(c, marks=SLOW) for c in NPZ_MISTAKES]
)
def test_bad_npz_files_exit_2_in_one_line(tmp_path, case):
    """README (Arrays): x_train and y_train are required, object arrays are refused, and
    x and y must have one row each: exit 2, one line, no study or output."""
    arrays, fragment = NPZ_MISTAKES[case]
    path = _npz(tmp_path / "data.npz", **arrays)
    done = run_cli("search", path, *_files_in(tmp_path), cwd=tmp_path)
    _one_line_error(done, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]


def _iris_csv(path: Path, *, header: str | None = None, encoding: str = "utf-8") -> Path:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    lines = [header or "label,sepal_length,sepal_width,petal_length,petal_width"]
    lines += [",".join([str(label), *map(str, row)]) for row, label in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    """Excel writes UTF-8 CSVs with a BOM: the first column is still called `label`."""
    path = _iris_csv(tmp_path / "flowers.csv", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbflabel,")
    done = run_cli(
        "search", path, "--target", "label", "--trials", "1", "--max-epochs", "1",
        *_files_in(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["task"] == "classification" and summary["trials"]["complete"] == 1


@pytest.mark.parametrize(
    ("header", "rows", "fragment"),
    [
        ("label,a,a", ["0,1,2", "1,3,4"] * 20, "more than one column named 'a'"),
        pytest.param("label,a,b", ["0,1,2", "1,inf,4"] * 20, "inf", marks=SLOW),
    ],
    ids=["duplicate-columns", "inf"],
)
def test_bad_csv_tables_exit_2_in_one_line(tmp_path, header, rows, fragment):
    """Duplicate column names (pandas would rename one `a.1` behind the user's back) and
    infinite numbers (they turn a normalized column into NaN) are refused in one line."""
    (tmp_path / "t.csv").write_text("\n".join([header, *rows]) + "\n")
    done = run_cli("search", "t.csv", "--target", "label", *_files_in(tmp_path), cwd=tmp_path)
    _one_line_error(done, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


# -- YAML space configs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "yaml",
    [  # each starts the CLI (~12 s): one in the default suite, the others slow
        pytest.param(
            'space: !!python/object/apply:os.system ["touch pwned"]\n', id="apply", marks=SLOW
        ),
        pytest.param(
            "space: mlp\nparams:\n  units: !!python/object/apply:os.system ['touch pwned']\n",
            id="nested-apply",
            marks=SLOW,
        ),
        pytest.param("space: !!python/name:os.system\n", id="name"),
    ],
)
def test_yaml_space_config_refuses_python_tags(tmp_path, yaml):
    """A space config is data: a `!!python/...` tag is refused in one line and runs
    nothing (no `pwned` file appears)."""
    (tmp_path / "evil.yaml").write_text(yaml)
    done = run_cli("search", "iris", "--space", "evil.yaml", *_files_in(tmp_path), cwd=tmp_path)
    _one_line_error(done, "cannot read space config evil.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.yaml"]


# -- a corrupt storage file ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["search", "show", "export"])
def test_a_corrupt_sqlite_storage_is_one_line_and_stays_untouched(tmp_path, command):
    """A storage file that is not SQLite (a bad copy, another program's file): exit 2 in
    one line naming the file, and its bytes are exactly as they were."""
    storage = tmp_path / "automl.db"
    storage.write_bytes(b"this is not a database\n" * 200)
    before = hashlib.sha256(storage.read_bytes()).hexdigest()
    argv = {
        "search": ["search", "iris", "--trials", "1", "--tracking-uri", "none"],
        "show": ["show", "iris-auto"],
        "export": ["export", "iris-auto", "--out", "m.keras"],
    }[command]
    done = run_cli(*argv, "--storage", sqlite_url(storage), cwd=tmp_path)
    _one_line_error(done, str(storage))
    assert hashlib.sha256(storage.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["automl.db"]
