"""The Optuna side: storage, sampler, pruner and the study itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl._errors import UsageError
from automl.config import mask_url
from automl.preflight import check_existing_sqlite, check_storage_url

if TYPE_CHECKING:
    import optuna

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats, so a killed run's trials end as FAIL, not RUNNING."""
    import optuna

    return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler for `name` (see `automl.config.SAMPLERS`), seeded."""
    import optuna

    if name == "tpe":
        # Multivariate TPE models the space's conditional structure jointly.
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=5
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise UsageError(f"unknown sampler {name!r}.")


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """The pruner for `name` (see `automl.config.PRUNERS`), sized to the epoch budget."""
    import optuna

    if name == "hyperband":
        # The first rung at a tenth of the budget: one epoch is too noisy to judge on
        # long budgets, yet on short ones it is all there is.
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, max_epochs // 10), max_resource=max_epochs, reduction_factor=3
        )
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, max_epochs // 10), reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown pruner {name!r}.")


def count_finished(study: optuna.Study) -> int:
    """Trials that count toward the budget: complete, pruned and failed ones."""
    import optuna

    states = tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED_STATES)
    return len(study.get_trials(deepcopy=False, states=states))


def load_study(name: str, storage: str) -> optuna.Study:
    """Load an existing study for `show`/`export`.

    Raises:
        UsageError: When the storage has no study of that name, listing those it has.
    """
    import optuna

    check_existing_sqlite(storage, name)
    check_storage_url(storage)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UsageError(
            f"no study {name!r} in {mask_url(storage)}; studies there: "
            f"{', '.join(names) or '(none)'}."
        ) from None
