"""search_spaces (the catalogue) and the `BuiltinSpace` contract of automl.spaces.

The catalogue reads each space module's literal constants without importing it; these
tests hold that cheap read to the imported modules, keep Keras out of listing, keep
`automl.spaces` ignorant of the catalogue, and show that a new space is one new file.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import search_spaces
from automl import UsageError
from automl import spaces as spaces_layer
from automl.spaces import BuiltinSpace, ModelSpec, Space, SpaceInfo, read_space_info
from search_spaces import SPACES, check_space_name, resolve_space

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("keras", "tensorflow", "optuna", "mlflow", "keras_tuner")


def _python(code: str, *, cwd: Path = ROOT, path: str = str(ROOT)) -> str:
    """Run `code` in a fresh interpreter and return its stdout (failing on an error)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_spaces_are_listed_in_their_declared_order():
    assert list(SPACES) == [
        "auto",
        "mlp",
        "tabular",
        "cnn",
        "resnet",
        "ngrams",
        "rnn",
        "transformer",
        "transfer",
    ]
    orders = [info.order for info in SPACES.values()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


def test_every_module_of_the_package_is_a_listed_space():
    folder = Path(search_spaces.__file__).parent
    files = {p.stem for p in folder.glob("*.py") if not p.name.startswith("_")}
    assert files == set(SPACES)


@pytest.mark.parametrize("name", list(SPACES))
def test_the_cheap_read_equals_the_imported_module(name):
    """What the catalogue read from the source is what the module holds once imported."""
    info = SPACES[name]
    module = importlib.import_module(info.module)
    assert isinstance(module, BuiltinSpace)
    assert info.name == name and info.module == module.__name__ == f"search_spaces.{name}"
    assert info.description == module.DESCRIPTION
    assert info.kinds == module.KINDS and info.tasks == module.TASKS
    assert info.order == module.ORDER
    assert callable(module.build)
    # One way to declare starting points: a module with recipes offers starting_points().
    assert callable(getattr(module, "starting_points", None)) or not hasattr(
        module, "STARTING_POINTS"
    )
    space = resolve_space(name)
    assert space.build is module.build and space.info == info and space.label == name


def test_listing_and_checking_names_import_no_keras():
    """`automl spaces` and config checks read the table without importing a space module."""
    out = _python(
        f"""
        import sys
        import search_spaces
        search_spaces.check_space_name("cnn")
        rows = [(i.name, i.kinds, i.description) for i in search_spaces.SPACES.values()]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        modules = sorted(m for m in sys.modules if m.startswith("search_spaces."))
        print(len(rows), heavy, modules)
        """
    )
    assert out.split() == ["9", "[]", "[]"]


def test_automl_spaces_never_names_the_catalogue():
    """The hp layer neither imports nor names `search_spaces`, not even in a string."""
    folder = Path(spaces_layer.__file__).parent
    naming = [p.name for p in folder.rglob("*.py") if "search_spaces" in p.read_text()]
    assert naming == []
    out = _python(
        """
        import sys
        from automl.spaces import resolve_space
        space = resolve_space(lambda hp: None)
        print(space.label.startswith("__main__:"), "search_spaces" in sys.modules)
        """
    )
    assert out.split() == ["True", "False"]


def test_without_a_builtin_lookup_names_are_refused(tmp_path):
    with pytest.raises(UsageError, match="unknown space 'cnn'; give file.py:function, "):
        spaces_layer.resolve_space("cnn")
    with pytest.raises(UsageError, match="unknown space 'cnn'; give file.py:function, "):
        spaces_layer.check_space_name("cnn")
    config = tmp_path / "narrow.toml"
    config.write_text('space = "cnn"\n[params]\noptimizer = "adamw"\n')
    with pytest.raises(UsageError, match="unknown space 'cnn'"):
        spaces_layer.resolve_space(str(config))


def test_a_plugged_in_lookup_resolves_names_and_config_bases(tmp_path):
    """The lookup a higher layer passes serves a plain name and a config file's base."""
    asked: list[str] = []

    def lookup(name: str) -> Space:
        asked.append(name)
        return Space(label=name, build=lambda hp, spec: None)

    assert spaces_layer.resolve_space("mine", builtin=lookup).label == "mine"
    config = tmp_path / "narrow.yaml"
    config.write_text("space: mine\nparams:\n  units: [8, 16]\n")
    space = spaces_layer.resolve_space(str(config), builtin=lookup)
    assert space.label == str(config) and space.overrides == {"units": [8, 16]}
    assert asked == ["mine", "mine"]
    spaces_layer.check_space_name("mine", builtins=["mine"])


def test_the_catalogue_checks_names_and_files_cheaply(tmp_path):
    for name in SPACES:
        check_space_name(name)
    check_space_name("some.module:build")  # an import is checked when resolved, not here
    listed = rf"unknown space 'nope'; give a built-in name \({', '.join(SPACES)}\), file.py"
    with pytest.raises(UsageError, match=listed):
        check_space_name("nope")
    with pytest.raises(UsageError, match="space file .*missing.py does not exist"):
        check_space_name(f"{tmp_path / 'missing.py'}:build")
    with pytest.raises(UsageError, match="unknown space 'nope'"):
        resolve_space("nope")


def test_a_new_space_is_one_new_file(tmp_path):
    """Dropping a module into the package lists it in its ORDER and resolves it by name."""
    package = tmp_path / "search_spaces"
    shutil.copytree(Path(search_spaces.__file__).parent, package)
    (package / "tiny.py").write_text(
        textwrap.dedent(
            '''
            """`tiny`: a test space."""
            DESCRIPTION = "a test space"
            KINDS = ("vector",)
            TASKS = ("regression",)
            ORDER = 15


            def build(hp, spec):
                return hp.Int("units", 1, 4)


            def starting_points(spec):
                return [{"units": 2}]
            '''
        )
    )
    (package / "_helper.py").write_text("X = 1\n")  # a helper module, not a space
    out = _python(
        """
        import search_spaces as catalogue
        space = catalogue.resolve_space("tiny")
        print(catalogue.__file__)
        print(list(catalogue.SPACES))
        print(space.label, space.info.kinds, space.starting_points(None))
        """,
        cwd=tmp_path,
        path=f"{tmp_path}:{ROOT}",
    )
    where, listing, resolved = out.splitlines()
    assert Path(where).parent == package
    assert "'tabular', 'tiny', 'cnn'" in listing and "_helper" not in listing
    assert resolved == "tiny ('vector',) [{'units': 2}]"


MODULE_MISTAKES = [
    ("KINDS = ('vector',)\nTASKS = ('regression',)\nORDER = 1\n", "must define DESCRIPTION"),
    (
        "DESCRIPTION = 'x'\nKINDS = OTHER.KINDS\nTASKS = ('regression',)\nORDER = 1\n",
        r"KINDS must be a literal written in place .* but got `OTHER.KINDS`",
    ),
    (
        "DESCRIPTION = 'x'\nKINDS = ('tabular',)\nTASKS = ('regression',)\nORDER = 1\n",
        r"KINDS must be a tuple drawn from .* but got \('tabular',\)",
    ),
    (
        "DESCRIPTION = 'x'\nKINDS = ('vector',)\nTASKS = ('regression',)\nORDER = '1'\n",
        "ORDER must be an int, but got '1'",
    ),
    (
        "DESCRIPTION = 'x'\nKINDS = ('vector',)\nTASKS = ('regression',)\nORDER = 1\n",
        r"must define build\(hp, spec\)",
    ),
]


@pytest.mark.parametrize(("source", "match"), MODULE_MISTAKES)
def test_a_module_that_breaks_the_contract_is_named(tmp_path, source, match):
    (tmp_path / "odd.py").write_text(source)
    with pytest.raises(TypeError, match=match):
        read_space_info(tmp_path / "odd.py", module="pkg.odd")


def test_read_space_info_takes_the_name_from_the_module(tmp_path):
    (tmp_path / "odd.py").write_text(
        'DESCRIPTION = ("one " "line")\nKINDS = ("text",)\nTASKS = ("classification",)\n'
        "ORDER: int = 3\n\ndef build(hp, spec):\n    return None\n"
    )
    info = read_space_info(tmp_path / "odd.py", module="pkg.odd")
    assert info == SpaceInfo("odd", "one line", ("text",), ("classification",), "pkg.odd", 3)
    spec = ModelSpec((4,), "vector", "classification", num_classes=2, n_train=10, max_epochs=1)
    with pytest.raises(UsageError, match="the odd space builds for text data, but got vector"):
        info.require_kind(spec)
