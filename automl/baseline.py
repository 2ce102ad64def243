"""The yardstick: what scikit-learn reaches in seconds on the same split, beside a search.

Someone with a table or a column of short texts compares a search's result with what
they would have typed first: HistGradientBoosting for tables, TF-IDF + LogisticRegression
for text. `fit_baseline` trains that model with its default settings on the study's own
training split, scores it on the same validation and test splits with the same
scikit-learn scores as the exported model (`automl.scoring.scores`), and says by how much
the search is ahead. It is never exported: it is a line in the report, not a model.

Images and sequences get none (no one-line scikit-learn model is a fair bar for pixels
or timesteps), and say nothing about it.

What lives here: choosing and fitting the baseline, and its one-line description. Where
it is shown (summary.json, MLflow) is the engine's finish phase.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from automl.scoring import LOWER_IS_BETTER, score_key, scores

if TYPE_CHECKING:
    import pandas as pd

    from automl.data import Dataset

logger = logging.getLogger("automl")

# Training rows at most: beyond this a yardstick would take minutes, not seconds, and
# gains little (both models are near their plateau long before).
MAX_ROWS = 100_000
# HistGradientBoosting takes at most this many categories per column (its bins, 255,
# less one for missing); rarer values of a wider column are treated as missing.
MAX_CATEGORIES = 254


def fit_baseline(data: Dataset, metric: str) -> dict[str, Any] | None:
    """Fit the scikit-learn yardstick on `data`'s training split and score it.

    Args:
        data: The study's dataset (its train, validation and test splits).
        metric: The metric the study scores trials on ("accuracy", "rmse", ...).

    Returns:
        None for images and sequences; else `model` (what was fitted, in words),
        `seconds` (fitting and scoring), `metric` (the key of `scores` that ranks like
        the study's metric), `val` and `test` (every score, as the exported model's test
        metrics have them; `test` empty without a test split).
    """
    model = _baseline_for(data)
    if model is None:
        return None
    from threadpoolctl import threadpool_limits

    name, estimator, features = model
    started = time.perf_counter()
    rows = slice(0, MAX_ROWS)
    # One OpenMP thread: on 2 cores that other work keeps busy, HistGradientBoosting's
    # threads spin-wait for each other (digits: 30 s with two, 1 s with one).
    with threadpool_limits(limits=1):
        estimator.fit(features(data.x_train[rows]), data.y_train[rows])
        result = {
            "model": name,
            "metric": score_key(metric, data.task),
            "val": _scores(estimator, features, data, data.x_val, data.y_val),
            "test": _scores(estimator, features, data, data.x_test, data.y_test),
        }
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def try_fit_baseline(data: Dataset, metric: str) -> dict[str, Any] | None:
    """`fit_baseline`, where a yardstick that cannot be fitted costs one warning (and
    None), never the search."""
    try:
        return fit_baseline(data, metric)
    except Exception as exc:  # noqa: BLE001 - a report line is not worth the search
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning("the scikit-learn yardstick could not be fitted: %s", reason)
        return None


def ahead_by(search: float, baseline: float, key: str) -> float:
    """How far the search's score is ahead of the baseline's on `key` (negative: behind),
    in the score's own units, whichever direction is better."""
    return (baseline - search) if key in LOWER_IS_BETTER else (search - baseline)


def describe(baseline: dict[str, Any], search_test: dict[str, float] | None = None) -> str:
    """One line for the report: the yardstick's test (else validation) score and time,
    and how far the search's test score is ahead of it or behind."""
    key = baseline["metric"]
    part = "test" if key in baseline["test"] else "val"
    head = f"scikit-learn yardstick ({baseline['model']}, {baseline['seconds']:.1f} s): "
    if key not in baseline[part]:  # AUC with a class missing from both splits
        return head + f"{key} undefined on these splits"
    line = head + f"{part} {key} {baseline[part][key]:.4f}"
    if part == "test" and search_test and key in search_test:
        gap = ahead_by(search_test[key], baseline["test"][key], key)
        if round(gap, 4) == 0:  # as printed: "ahead by 0.0000" would read as a win
            line += "; the search is level with it"
        else:
            line += f"; the search is {'ahead' if gap > 0 else 'behind'} by {abs(gap):.4f}"
    return line


def _baseline_for(data: Dataset) -> tuple[str, Any, Any] | None:
    """(description, unfitted estimator, raw split -> its features) for `data`."""
    regression = data.task == "regression"
    if data.kind == "text":
        return _text_baseline(data, regression)
    if data.kind == "table":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        kind = "Regressor" if regression else "Classifier"
        estimator = (
            HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        )(categorical_features="from_dtype", random_state=0)
        categories = _categories(data.x_train)
        return f"HistGradientBoosting{kind}", estimator, lambda x: _as_categories(x, categories)
    if data.kind == "vector":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        kind = "Regressor" if regression else "Classifier"
        estimator = (
            HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        )(random_state=0)
        return f"HistGradientBoosting{kind}", estimator, lambda x: np.asarray(x, "float64")
    return None  # images and sequences: no one-line scikit-learn bar


def _text_baseline(data: Dataset, regression: bool) -> tuple[str, Any, Any]:
    """TF-IDF of words and word pairs, then LogisticRegression (Ridge for regression).

    Texts given as token ids (a set's own vectorization) become strings of their ids, so
    the same vectorizer reads them.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline

    ids = data.x_train.dtype != object
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), token_pattern=r"\S+" if ids else r"(?u)\b\w\w+\b"
    )
    head = Ridge() if regression else LogisticRegression(max_iter=1000)
    name = f"TF-IDF word 1-2-grams + {type(head).__name__}"
    return name, make_pipeline(vectorizer, head), _id_strings if ids else _texts


def _texts(x: np.ndarray) -> list[str]:
    return [str(t) for t in x]


def _id_strings(x: np.ndarray) -> list[str]:
    """Token id rows as strings of ids, padding (0) left out."""
    return [" ".join(map(str, row[row > 0])) for row in np.asarray(x)]


def _categories(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The text columns' categories: the training split's most frequent values."""
    found = {}
    import pandas as pd

    for name in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[name]):  # object or pandas' str dtype
            counts = frame[name].value_counts()
            found[name] = [str(v) for v in counts.index[:MAX_CATEGORIES]]
    return found


def _as_categories(frame: pd.DataFrame, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Text columns as pandas categories (fixed by the training split; others missing),
    which HistGradientBoosting splits on natively; numbers as they are."""
    import pandas as pd

    frame = frame.copy()
    for name, values in categories.items():
        frame[name] = pd.Categorical(frame[name], categories=values)
    return frame


def _scores(estimator: Any, features: Any, data: Dataset, x: Any, y: np.ndarray) -> dict:
    """`automl.scoring.scores` of the estimator's output on one split (empty if none)."""
    if len(y) == 0:
        return {}
    if data.task == "regression":
        return scores(y, estimator.predict(features(x)), data.task, 1)
    # Every class gets a column, in class-id order, even one the training split lacks.
    output = np.zeros((len(y), data.num_classes))
    output[:, estimator.classes_.astype(int)] = estimator.predict_proba(features(x))
    return scores(y, output, data.task, data.num_classes)
