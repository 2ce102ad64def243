"""The automl test suite; mirrors the package layout (see conftest.py for shared fixtures)."""
