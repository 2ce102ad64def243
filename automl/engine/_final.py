"""The final model: the best single model, or an ensemble of the kept ones, with flip
(and shift) test-time augmentation for images, whichever scores best on validation.

Candidates are the models `_checkpoints` kept (the best complete trials). Each predicts
the validation split once from raw data; greedy ensemble selection (`automl.ensemble`)
weighs them; for images, the mean over each picture and its mirror image is tried, then
that with the mirrored pairs of the picture moved one pixel each way, when the time left
allows. Under `--max-params` or `--max-latency-ms`, an option is kept only when it meets
them too: an ensemble adds its members' parameters and passes, TTA multiplies the passes
(measured on the model as exported: one raw row, preprocessing included); where TTA on
the ensemble breaks them, TTA on the best model alone is tried instead. Every choice is
made on validation scores computed with scikit-learn, never on the test split. The
result is one Keras model that takes raw data, like a single trial's.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from automl._card_code import example_input
from automl.engine._plan import FINISH_FIXED_S
from automl.ensemble import average_model, same_input, select
from automl.footprint import Footprint, latency_ms
from automl.model_card import model_inputs
from automl.models import load_model, predict_raw
from automl.record import TrialRecord
from automl.scoring import score_key, score_of
from automl.spaces.blocks import with_flip_tta

if TYPE_CHECKING:
    import keras
    import numpy as np
    import optuna

    from automl.data import Dataset
    from automl.engine._limits import Limits
    from automl.objective import Objective

logger = logging.getLogger("automl")

# Whether an option's model (its `val_scores` key given) meets the search's limits.
Meets = Callable[["keras.Model", str], bool]

# `_try_tta`'s arguments: the final model so far, the data, the validation scorer, the
# objective, the finish's deadline and the limits' check.
Tta = tuple["FinalModel", "Dataset", Any, "Objective", "float | None", Meets]

SHIFT_TTA_VIEWS = 6  # each image and its mirror, and two shifted mirrored pairs


@dataclasses.dataclass
class FinalModel:
    """What the search exports.

    Attributes:
        model: One Keras model on raw data.
        members: `{"trial": n, "weight": w}` per model it averages (one: the best).
        flip_tta: Whether predictions average each image and its mirror image.
        val_scores: The validation score (metric `metric`) of each option tried:
            "best" (the best single model), "ensemble", "flip_tta", "flip_shift_tta"
            (TTA on the ensemble where it won, else on the best model; on the best
            model also where flip TTA on the ensemble broke the limits).
        metric: The scikit-learn score the options were compared on.
        shift_tta: Whether they also average the mirrored pairs of each image moved one
            pixel down-right and up-left (`with_flip_tta(shifts=True)`).
        left_out: Why each option that broke `--max-params` / `--max-latency-ms` was
            left out, by its `val_scores` key; TTA on an ensemble under
            "ensemble_flip_tta" / "ensemble_flip_shift_tta". Where its flip TTA is left
            out, TTA on the best model alone (cheaper) is tried under the usual keys.
    """

    model: keras.Model
    members: list[dict[str, Any]]
    flip_tta: bool
    val_scores: dict[str, float]
    metric: str
    shift_tta: bool = False
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def chosen(self) -> str:
        """The `val_scores` key of the option it is."""
        if self.shift_tta:
            return "flip_shift_tta"
        if self.flip_tta:
            return "flip_tta"
        return "ensemble" if len(self.members) > 1 else "best"

    @property
    def single(self) -> bool:
        """Whether it is the best trial's model as trained (the checkpoint itself)."""
        return len(self.members) == 1 and not self.flip_tta

    def describe(self) -> str:
        """One line for people and MLflow."""
        if len(self.members) == 1:
            text = f"trial {self.members[0]['trial']}"
        else:
            text = "ensemble of " + ", ".join(
                f"trial {m['trial']} ×{m['weight']:.2f}" for m in self.members
            )
        if self.shift_tta:
            return text + " with flip and shift test-time augmentation"
        return text + (" with flip test-time augmentation" if self.flip_tta else "")

    def facts(self) -> dict[str, Any]:
        """For summary.json."""
        return {
            "description": self.describe(),
            "members": self.members,
            "flip_tta": self.flip_tta,
            "shift_tta": self.shift_tta,
            "chosen": self.chosen,
            "metric": self.metric,
            **({"left_out": self.left_out} if self.left_out else {}),
            "val_scores": {  # JSON has no NaN (an R² on a tiny split can be one)
                key: round(value, 5) if math.isfinite(value) else None
                for key, value in self.val_scores.items()
            },
        }


def choose_final(
    kept: list[optuna.trial.FrozenTrial],
    data: Dataset,
    objective: Objective,
    until: float | None = None,
    limits: Limits | None = None,
) -> FinalModel | None:
    """The best of: the best kept model, their ensemble, either with flip TTA or flip and
    shift TTA (images).

    Args:
        kept: The complete trials whose model is on disk, best first.
        data: The dataset (its validation split decides).
        objective: The study's objective (its metric and direction).
        until: `time.monotonic()` at which the budget ends (None: no deadline); shift
            TTA is tried only when its estimated cost fits before it.
        limits: The search's `--max-params` / `--max-latency-ms`: each option must meet
            them (None: no limits).

    Returns:
        The final model, or None without any kept model.
    """
    if not kept:
        return None
    models = [load_model(TrialRecord.read(t).model_file, compile=False) for t in kept]
    usable = [i for i, m in enumerate(models) if same_input(m, models[0])]
    models, kept = [models[i] for i in usable], [kept[i] for i in usable]
    predictions = [predict_raw(m, data, data.x_val) for m in models]
    score = _scorer(data, objective)
    metric = score_key(objective.metric, data.task)
    order = best_first(predictions, data, score, objective)
    models, kept = [models[i] for i in order], [kept[i] for i in order]
    predictions = [predictions[i] for i in order]
    final = FinalModel(models[0], [{"trial": kept[0].number, "weight": 1.0}], False, {}, metric)
    try:
        final.val_scores["best"] = score(predictions[0])
    except KeyError:  # AUC with a class missing from validation: nothing to compare on
        return final
    # Each option on its own: one that cannot be built leaves the others (and says why).
    meets = functools.partial(_meets, limits, data, final)
    if len(models) > 1:
        ensemble = (final, models, kept, predictions, score, objective, meets)
        _attempt("ensemble", _try_ensemble, *ensemble)
    if data.kind == "image" and final.model.inputs[0].shape[2] is not None:
        tta = (final, data, score, objective, until, meets)
        _attempt("TTA", _try_ttas, tta, (models[0], kept[0].number))  # fixed-size images
    return final


def best_first(
    predictions: list[np.ndarray], data: Dataset, score: Any, objective: Objective
) -> list[int]:
    """The candidates' order, best first: by validation score, ties (common for
    accuracy on a small validation split, where many models get every row right) broken
    by validation log loss, so the more confident model leads (classification only;
    otherwise the trials' own order stays)."""
    from automl.scoring import scores

    try:
        values = [score(p) for p in predictions]
    except KeyError:  # AUC with a class missing: choose_final decides on nothing
        return list(range(len(predictions)))
    if data.task != "classification":
        losses = [0.0] * len(predictions)
    else:
        losses = [
            scores(data.y_val, p, data.task, data.num_classes)["log_loss"] for p in predictions
        ]

    def before(i: int, j: int) -> int:
        if objective.is_better(values[i], values[j]):
            return -1
        if objective.is_better(values[j], values[i]):
            return 1
        return (losses[i] > losses[j]) - (losses[i] < losses[j]) or i - j

    return sorted(range(len(predictions)), key=functools.cmp_to_key(before))


def _attempt(what: str, option: Any, *args: Any) -> None:
    try:
        option(*args)
    except Exception as exc:  # noqa: BLE001 - the final model stays what it was
        logger.warning("the final model: %s could not be tried (%s)", what, exc)


def _meets(
    limits: Limits | None, data: Dataset, final: FinalModel, model: keras.Model, what: str
) -> bool:
    """Whether the option `what` (`model`, a `val_scores` key) meets the search's size and
    latency limits, measured on the model as exported (one raw row, preprocessing
    included); why not goes to `final.left_out` and one log line."""
    if limits is None or not limits.active:
        return True
    latency = None
    if limits.max_latency_ms is not None:
        latency = latency_ms(model, example_input(model_inputs(model), model, data))
        if latency is None:  # as for a trial's model: kept, but said
            logger.info("the final model: %s could not be timed on one row", _OPTIONS[what])
    reason = limits.reason(Footprint(int(model.count_params()), None, latency))
    if reason is not None:
        final.left_out[what] = reason
        logger.info("the final model: %s left out (%s)", _OPTIONS[what], reason)
    return reason is None


_OPTIONS = {
    "ensemble": "the ensemble",
    "flip_tta": "flip TTA",
    "flip_shift_tta": "shift TTA",
    "ensemble_flip_tta": "flip TTA on the ensemble",
    "ensemble_flip_shift_tta": "shift TTA on the ensemble",
}


def _scorer(data: Dataset, objective: Objective) -> Any:
    def score(output: np.ndarray) -> float:
        return score_of(data.y_val, output, data.task, data.num_classes, objective.metric)

    return score


def _try_ensemble(
    final: FinalModel,
    models: list[keras.Model],
    kept: list[optuna.trial.FrozenTrial],
    predictions: list[np.ndarray],
    score: Any,
    objective: Objective,
    meets: Meets,
) -> None:
    weights, value = select(predictions, score, objective.is_better)
    final.val_scores["ensemble"] = value
    if not objective.is_better(value, final.val_scores["best"]):
        return
    ensemble = average_model(models, weights)
    if not meets(ensemble, "ensemble"):
        return
    final.model = ensemble
    final.members = [
        {"trial": t.number, "weight": round(w, 4)} for t, w in zip(kept, weights, strict=True) if w
    ]


def _try_ttas(tta: Tta, best: tuple[keras.Model, int]) -> None:
    """TTA on the final model (`_try_tta`, given its arguments `tta`); where TTA on an
    ensemble broke the search's limits, TTA on `best` (the best single model and its
    trial's number), which costs less."""
    _try_tta(*tta)
    if "ensemble_flip_tta" in tta[0].left_out:
        _try_tta(*tta, best)


def _try_tta(
    final: FinalModel,
    data: Dataset,
    score: Any,
    objective: Objective,
    until: float | None,
    meets: Meets,
    alone: tuple[keras.Model, int] | None = None,
) -> None:
    """Flip TTA, then flip and shift TTA where it fits before `until`: each replaces the
    final model when it scores better on validation than what is chosen so far, and
    meets the search's limits.

    Args:
        final: The final model so far; changed in place.
        data: The dataset (its validation split decides).
        score: The validation scorer (`_scorer`).
        objective: The study's objective (its direction).
        until: `time.monotonic()` by which the finish must end, or None. Shift TTA is
            tried only when its cost, estimated from flip TTA's, leaves `FINISH_FIXED_S`
            for saving and the report.
        meets: `_meets` bound to the search's limits, data and `final`: (model, option's
            `val_scores` key) -> bool.
        alone: The best single model and its trial's number, to wrap instead of the
            final model (an ensemble whose TTA broke a limit); its TTA replaces the
            ensemble when it scores better on validation.
    """
    ensemble = len(final.members) > 1
    current = final.val_scores["ensemble" if ensemble else "best"]
    chosen, members = final.model, None
    if alone is not None:
        chosen, members = alone[0], [{"trial": alone[1], "weight": 1.0}]
    # An ensemble's TTA that breaks a limit is left out under its own key, so that the
    # best model's TTA may still be tried and scored under the usual one.
    limit_key = "ensemble_" if ensemble and alone is None else ""
    flip = with_flip_tta(chosen)
    if not meets(flip, limit_key + "flip_tta"):
        return  # shift TTA costs three times more
    started = time.monotonic()
    value = final.val_scores["flip_tta"] = score(predict_raw(flip, data, data.x_val))
    flip_s = time.monotonic() - started
    if objective.is_better(value, current):
        final.model, final.flip_tta, current = flip, True, value
        final.members = members or final.members
    shifted = with_flip_tta(chosen, shifts=True)
    if not meets(shifted, limit_key + "flip_shift_tta"):  # before the deadline's: it takes time
        return
    needed = shift_tta_seconds(flip_s, data)
    if until is not None and time.monotonic() + needed > until - FINISH_FIXED_S:
        logger.info(
            "the final model: shift TTA not tried (about %.0f s; %.0f s left in the budget)",
            needed,
            max(0.0, until - time.monotonic()),
        )
        return
    value = final.val_scores["flip_shift_tta"] = score(predict_raw(shifted, data, data.x_val))
    if objective.is_better(value, current):
        final.model, final.flip_tta, final.shift_tta = shifted, True, True
        final.members = members or final.members


def shift_tta_seconds(flip_s: float, data: Dataset) -> float:
    """What trying flip and shift TTA costs: six views of validation, then, if it wins,
    six of the test split for the export's score.

    Args:
        flip_s: The seconds flip TTA took on validation (two views).
        data: The dataset (the sizes of its validation and test splits).

    Returns:
        The estimated seconds.
    """
    test_share = len(data.y_test) / max(1, len(data.y_val))
    return flip_s * (SHIFT_TTA_VIEWS / 2) * (1 + test_share)
