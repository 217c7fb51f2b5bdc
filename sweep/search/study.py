"""The optuna study of a search folder: a JournalStorage file next to the Parquet parts.

The journal is an append-only log of every ask, draw and tell (``optuna.storages.journal``, with
a file lock, so several processes may share it and no database server is needed). Reopening it
gives back every trial, finished or not, which is what resume builds on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sweep.search.setup import SearchSetup
from sweep.search.space import grid_space

JOURNAL = "study.journal"
#: Trial user attributes the search writes (read by the summary and the report).
CONSTRAINTS_ATTR = "constraints"


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def storage(root: str) -> Any:
    """The folder's JournalStorage (the file is created on the first write)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(f"{root}/{JOURNAL}"))


def _constraints(trial: Any) -> list[float]:
    return list(trial.user_attrs.get(CONSTRAINTS_ATTR, ()))


def sampler_seed(root_entropy: int, trials_so_far: int) -> int:
    """The sampler's seed: from the sweep's root entropy and how many trials the study holds, so
    a resumed search draws reproducibly too (a fresh sampler's state is not in the journal)."""
    return int(np.random.SeedSequence(root_entropy, spawn_key=(trials_so_far,)).generate_state(1)[0])


def make_sampler(setup: SearchSetup, seed: int) -> Any:
    """The spec's sampler: TPE (multivariate, constant liar: pending trials count as a bad
    value, so parallel trials spread out), GP, NSGA-II, random or grid."""
    import optuna

    search = setup.search
    constraints = _constraints if search.constraints else None
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=search.startup_trials,
            constraints_func=constraints,
        )
    if search.sampler == "gp":
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=search.startup_trials, constraints_func=constraints
        )
    if search.sampler == "nsga2":
        population = max(4, min(50, search.trials // 4))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population, constraints_func=constraints)
    if search.sampler == "grid":
        return optuna.samplers.GridSampler(grid_space(search.parameters), seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(setup: SearchSetup, root: str, root_entropy: int, *, create: bool = True) -> Any:
    """Open (or create) the folder's study with the spec's sampler; None when ``create`` is
    False and there is none yet."""
    import optuna

    _quiet()
    store = storage(root)
    exists = setup.name in optuna.get_all_study_names(store) if hasattr(optuna, "get_all_study_names") else True
    if not exists and not create:
        return None
    directions = [o.direction for o in setup.search.objectives]
    study = optuna.create_study(
        storage=store,
        study_name=setup.name,
        directions=directions,
        load_if_exists=True,
        sampler=make_sampler(setup, sampler_seed(root_entropy, 0)),
    )
    count = len(study.get_trials(deepcopy=False))
    if count:
        study = optuna.load_study(
            study_name=setup.name, storage=store, sampler=make_sampler(setup, sampler_seed(root_entropy, count))
        )
    return study
