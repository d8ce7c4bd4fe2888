"""Optuna glue for studies: one conditional search space over several estimators, samplers and pruners.

A trial first picks the estimator (`estimator`, categorical), then that estimator's parameters under
names prefixed with it (`lightgbm_classifier:num_leaves`), so TPE models each estimator's space apart
and conditional parameters (declared with a `ParameterCondition`) are only sampled when active.
"""

from __future__ import annotations

from typing import Any

from microlearn_grpc.core.estimators import SearchSpace
from microlearn_grpc.core.estimators._search_space import (CategoricalDistribution, FloatDistribution,
                                                           IntDistribution)

__all__ = ["ESTIMATOR_PARAM", "make_pruner", "make_sampler", "prefixed", "suggest", "unprefixed"]

ESTIMATOR_PARAM = "estimator"


def prefixed(estimator: str, params: dict[str, Any]) -> dict[str, Any]:
    return {ESTIMATOR_PARAM: estimator, **{f"{estimator}:{k}": v for k, v in params.items()}}


def unprefixed(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    estimator = params[ESTIMATOR_PARAM]
    return estimator, {k.split(":", 1)[1]: v for k, v in params.items() if k.startswith(f"{estimator}:")}


def suggest(trial: Any, candidates: list[str], spaces: dict[str, SearchSpace]) -> tuple[str, dict[str, Any]]:
    """Sample an estimator and its active parameters on an Optuna trial (enqueued values are honoured)."""
    estimator = trial.suggest_categorical(ESTIMATOR_PARAM, candidates)
    params: dict[str, Any] = {}
    for spec in spaces[estimator]:
        if spec.condition is not None and not spec.condition.holds(params):
            continue
        name, dist = f"{estimator}:{spec.name}", spec.distribution
        if isinstance(dist, IntDistribution):
            params[spec.name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, FloatDistribution):
            step = getattr(dist, "step", None)
            params[spec.name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log,
                                                    **({"step": step} if step and not dist.log else {}))
        elif isinstance(dist, CategoricalDistribution):
            params[spec.name] = trial.suggest_categorical(name, list(dist.choices))
        else:  # pragma: no cover - a new distribution type must be mapped here
            raise TypeError(f"no Optuna mapping for {type(dist).__name__}")
    return estimator, params


def make_sampler(kind: str, seed: int, n_candidates: int) -> Any:
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # The first trial of every candidate runs its defaults (enqueued), so TPE starts modelling soon after.
    import warnings

    with warnings.catch_warnings():  # `group` is experimental; `warn_independent_sampling` deprecated in 4.9
        warnings.simplefilter("ignore")
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(5, n_candidates + 2), multivariate=True,
                                          group=True, constant_liar=True)


def make_pruner(kind: str, max_iterations: int) -> Any:
    import optuna

    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=5, max_resource=max_iterations or "auto",
                                              reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=10, interval_steps=1)
