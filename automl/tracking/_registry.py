"""The best model in MLflow: logged with a signature and an input example, registered
under a name derived from the study, with the alias `champion` on the best version.

`models:/<name>@champion` therefore always loads the study's best model so far, taking
the same raw input the search was given.
"""

from __future__ import annotations

import logging
import os
import re
import types
from pathlib import Path
from typing import Any

logger = logging.getLogger("automl")

CHAMPION = "champion"


def registered_model_name(study: str) -> str:
    """The registry name for a study: its name, with characters MLflow's UI and URIs
    treat specially (anything but letters, digits, `-`, `_`, `.`) turned into `-`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", study).strip("-") or "automl-study"


def _save_keras(path: str, **kwargs: Any) -> None:
    # MLflow 3.17's Keras flavor writes the input example before it creates its folder.
    os.makedirs(path, exist_ok=True)
    import mlflow.keras

    mlflow.keras.save_model(path=path, **kwargs)


_KERAS_FLAVOR = types.SimpleNamespace(__name__="mlflow.keras", save_model=_save_keras)


def publish_best_model(
    tracking_uri: str,
    run_id: str,
    model_path: Path,
    example: Any,
    name: str,
    facts: dict[str, Any],
) -> str:
    """Log the saved model on `run_id`, register it as a new version of `name`, and move
    the alias `champion` to it unless the current champion scored better.

    Args:
        tracking_uri: The MLflow tracking URI.
        run_id: The study's parent run.
        model_path: The `.keras` file the search saved (it takes raw input).
        example: A few raw rows, as `model.predict` takes them.
        name: The registered model name.
        facts: `trial`, `value` (validation metric), `metric` and `direction`; kept as
            tags of the logged model and of the version.

    Returns:
        The new version number.
    """
    import mlflow
    from mlflow.models import Model, infer_signature

    from automl.models import load_model
    from automl.tracking._tracker import library_versions

    model = load_model(model_path)
    signature = infer_signature(example, model.predict(example, verbose=0))
    versions = library_versions()
    # Explicit requirements: inferring them imports the model in a subprocess (~15 s).
    requirements = [
        f"{lib}=={versions[f'version_{lib}']}"
        for lib in ("keras", "tensorflow", "tensorflow-cpu")
        if f"version_{lib}" in versions
    ]
    tags = {key: str(value) for key, value in facts.items()}
    client = mlflow.MlflowClient(tracking_uri)
    # Created here, in the run's experiment: Model.log would put it in the active
    # (by default the Default) experiment.
    logged = client.create_logged_model(
        client.get_run(run_id).info.experiment_id,
        name="best_model",
        source_run_id=run_id,
        tags=tags,
        model_type="keras",
    )
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        info = Model.log(
            artifact_path=None,
            name="best_model",
            flavor=_KERAS_FLAVOR,
            flavor_name="mlflow.keras",
            model=model,
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            run_id=run_id,
            model_id=logged.model_id,
            registered_model_name=name,
        )
    finally:
        mlflow.set_tracking_uri(previous)
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if _beats_champion(client, name, facts):
        client.set_registered_model_alias(name, CHAMPION, version)
    return version


def _beats_champion(client: Any, name: str, facts: dict[str, Any]) -> bool:
    """True when no champion exists or `facts["value"]` is at least as good as its value."""
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return True
    held = champion.tags.get("value")
    if held is None or champion.tags.get("metric") != str(facts.get("metric")):
        return True  # another metric (or a hand-made version): the newest best takes it
    from automl.objective import Objective

    objective = Objective(str(facts["metric"]), str(facts["direction"]))
    return not objective.is_better(float(held), than=float(facts["value"]))
