"""MLflow for a study: runs, study artifacts, the model registry, and delivery that
survives an unreachable tracking server.

`StudyTracker` is what the engine talks to; `NullTracker` logs nothing.
"""

from automl.tracking._registry import registered_model_name
from automl.tracking._report import StudyReport
from automl.tracking._tracker import NullTracker, StudyTracker, library_versions, make_tracker

__all__ = [
    "NullTracker",
    "StudyReport",
    "StudyTracker",
    "library_versions",
    "make_tracker",
    "registered_model_name",
]
