"""Model selection: which estimators suit a dataset, best first, and what to watch out for (pure, profile only).

`select_models` detects (or checks) the task with `task_detection`, then scores every registered estimator
of that task by a prior of how well its family does on tabular data (boosting first, as the AutoML
benchmarks find), nudged by the data: linear models and SVMs gain on small tables, boosting gains when
there are categorical or missing values, the MLP gains from 5,000 rows, and costly estimators lose ground
when the fit estimate eats a large share of the time budget; a linear model always gets a slot.
Estimators too slow for the data size (their own `max_rows`/`max_features`) or for the budget are
excluded with the reason. Baselines are never proposed as candidates; they are the
bar every candidate must clear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from microlearn_grpc.core import metrics as metric_lib
from microlearn_grpc.core import task_detection
from microlearn_grpc.core.estimators import CLUSTERING, REGRESSION, list_estimators
from microlearn_grpc.core.preprocessing import plan_features

__all__ = ["Candidate", "Selection", "Warning_", "estimate_fit_seconds", "select_models"]

# Prior expected quality of a family on tabular data, 0-1 (FLAML/AutoGluon benchmark orderings).
_FAMILY_PRIOR = {
    "gradient_boosting": 0.90, "tree_ensemble": 0.80, "neural_network": 0.62, "linear": 0.60, "svm": 0.55,
    "nearest_neighbors": 0.45, "decision_tree": 0.40, "naive_bayes": 0.30, "clustering": 0.50, "baseline": 0.0,
}
_PREFERRED = {"lightgbm_classifier": 0.05, "lightgbm_regressor": 0.05, "kmeans": 0.1}  # tie-breaks within a family
_SMALL_ROWS = 1_000
_KFOLD_ROWS = 5_000  # below this a k-fold estimate is affordable and far less noisy than a holdout
_NEURAL_ROWS = 5_000  # from here an MLP has rows enough to be a serious candidate
_LARGE_ROWS = 1_000_000
_HIGH_CARDINALITY = 100
_MOSTLY_MISSING = 0.5
_IMBALANCED = 3.0  # majority/minority ratio from which ROC AUC / class weights are worth it
_LGBM_SECONDS_PER_CELL = 3e-7  # LightGBM, 100 rounds, one thread: about 1.5 s for 100k x 50
_FAMILY_REPEAT_PENALTY = 0.12
_FIT_OVERHEAD_SECONDS = 0.3  # process start, data read, preprocessing and scoring of one job


@dataclass(frozen=True)
class Warning_:
    code: str  # SelectionWarningCode suffix, e.g. "CLASS_IMBALANCE"
    level: str  # "WARNING" or "INFO"
    message: str
    columns: tuple[str, ...] = ()
    suggestion: str = ""


@dataclass(frozen=True)
class Candidate:
    estimator: Any  # the Estimator class
    rank: int
    score: float
    reason: str
    default_hyperparameters: dict[str, Any]
    search_space: Any  # SearchSpace adapted to the data size
    relative_cost: float
    estimated_fit_seconds: float
    uses_gpu: bool


@dataclass(frozen=True)
class Selection:
    task: str
    detection: Any  # task_detection.TaskDetection
    target: str
    metric: str
    direction: str
    validation: dict[str, Any]  # {"method": "k_fold", "folds": 5} or {"method": "holdout", "fraction": 0.2}
    candidates: tuple[Candidate, ...]
    excluded: tuple[tuple[str, str], ...]  # (estimator id, reason)
    feature_columns: tuple[str, ...]
    warnings: tuple[Warning_, ...] = field(default=())


def estimate_fit_seconds(relative_cost: float, n_rows: int, n_features: int) -> float:
    """Rough wall time of one job with default hyperparameters on one core."""
    return _FIT_OVERHEAD_SECONDS + relative_cost * _LGBM_SECONDS_PER_CELL * max(1, n_rows) * max(1, n_features)


def select_models(profile: dict, target: str | None, *, task: str | None = None, max_candidates: int = 5,
                  time_budget_seconds: float = 0, use_gpu: bool = False, include: tuple[str, ...] = (),
                  exclude: tuple[str, ...] = (), ignore_columns: tuple[str, ...] = ()) -> Selection:
    """Rank the estimators for `target` of the profiled dataset. ValueError (for the user) on a bad target/task."""
    detection = (task_detection.check_task(profile, target or None, task) if task
                 else task_detection.detect_task(profile, target or None))
    task = detection.task
    if task != CLUSTERING and not target:
        raise ValueError(f"a target column is required for {task}")
    plan = plan_features(profile, target or None, task=task, drop=ignore_columns)
    n_rows = int(profile.get("row_count") or 0)
    n_features = max(1, len(plan.features))
    columns = {c["name"]: c for c in profile.get("columns") or []}
    has_categoricals = any(columns[name]["type"] in ("categorical", "text", "boolean") for name in plan.features)
    has_missing = any(int(columns[name].get("missing_count") or 0) for name in plan.features)

    scored: list[tuple] = []  # (score, estimator id, class, estimated seconds, reason, relative cost)
    excluded: list[tuple[str, str]] = []
    for cls in list_estimators(task):
        if include and cls.name not in include:
            continue
        if cls.name in exclude:
            excluded.append((cls.name, "excluded by request"))
            continue
        if cls.family == "baseline" and not include:
            excluded.append((cls.name, "a baseline: the score every candidate must beat, not a candidate"))
            continue
        if not cls.is_available():
            excluded.append((cls.name, cls.unavailable_reason()))
            continue
        too_large = cls.check_data_size(n_rows, n_features)
        if too_large:
            excluded.append((cls.name, too_large))
            continue
        gpu = bool(use_gpu and cls.supports_gpu)
        cost = (cls.relative_cost_gpu or cls.relative_cost) if gpu else cls.relative_cost
        seconds = estimate_fit_seconds(cost, n_rows, n_features)
        if time_budget_seconds and seconds > time_budget_seconds / 2:
            excluded.append((cls.name, f"one fit takes about {seconds:.0f} s, too slow for a "
                                       f"{time_budget_seconds:g} s budget"))
            continue
        quality, why = _quality(cls, task, n_rows, n_features, has_categoricals, has_missing)
        # Cost matters more the shorter the budget: a fit eating 10% of it costs about 0.05.
        share = seconds / time_budget_seconds if time_budget_seconds else seconds / 600.0
        value = max(0.0, min(1.0, quality - 0.5 * min(share, 1.0) - 0.01 * math.log10(max(cost, 0.01))))
        scored.append((value, cls.name, cls, seconds, why, cost))
    scored = _diversify(sorted(scored, key=lambda item: (-item[0], item[2].relative_cost, item[1])))
    chosen = _with_linear_slot(scored, max_candidates, explicit=bool(include))
    candidates = []
    for rank, (value, _, cls, seconds, why, cost) in enumerate(chosen, start=1):
        space = cls.search_space(task, n_rows, n_features)
        candidates.append(Candidate(cls, rank, round(value, 4), why, space.defaults(), space, cost,
                                    round(seconds, 3), bool(use_gpu and cls.supports_gpu)))
    taken = {item[1] for item in chosen}
    for value, name, *_ in (item for item in scored if item[1] not in taken):
        excluded.append((name, f"ranked below the top {max_candidates} (score {value:.2f})"))

    metric = _metric(task, detection)
    return Selection(
        task=task, detection=detection, target=target or "", metric=metric, direction=metric_lib.direction(metric),
        validation=({"method": "k_fold", "folds": 5} if task != CLUSTERING and n_rows < _KFOLD_ROWS
                    else {"method": "holdout", "fraction": 0.2}),
        candidates=tuple(candidates), excluded=tuple(excluded), feature_columns=tuple(plan.features),
        warnings=tuple(_warnings(profile, target, task, detection, plan, columns, n_rows)))


def _with_linear_slot(scored: list[tuple], max_candidates: int, explicit: bool) -> list[tuple]:
    """The top `max_candidates`, where the last slot goes to the best linear model when none made it: it
    costs next to nothing, adds a diverse member for the ensemble, and wins outright when the signal is
    linear (a linear regression target with noise, which trees only approximate in steps)."""
    top = scored[:max_candidates]
    if explicit or max_candidates < 3 or any(item[2].family == "linear" for item in top):
        return top
    linear = next((item for item in scored[max_candidates:] if item[2].family == "linear"), None)
    if linear is None:
        return top
    why = linear[4] + "; kept as the cheap linear member of the portfolio"
    return [*top[:-1], (linear[0], linear[1], linear[2], linear[3], why, linear[5])]


def _diversify(ranked: list[tuple]) -> list[tuple]:
    """Re-rank greedily so a family's second and later members fall back (a search over several families
    finds better ensembles than one over three boosting libraries)."""
    out: list[tuple] = []
    seen: dict[str, int] = {}
    remaining = list(ranked)
    while remaining:
        best = max(remaining, key=lambda item: item[0] - _FAMILY_REPEAT_PENALTY * seen.get(item[2].family, 0))
        remaining.remove(best)
        value = max(0.0, best[0] - _FAMILY_REPEAT_PENALTY * seen.get(best[2].family, 0))
        seen[best[2].family] = seen.get(best[2].family, 0) + 1
        out.append((value, *best[1:]))
    return out


def _quality(cls: Any, task: str, n_rows: int, n_features: int, categoricals: bool,
             missing: bool) -> tuple[float, str]:
    quality = _FAMILY_PRIOR.get(cls.family, 0.3) + _PREFERRED.get(cls.name, 0.0)
    reasons = {"gradient_boosting": "gradient boosting is the strongest family on most tables",
               "tree_ensemble": "bagged trees are robust with little tuning",
               "linear": "a fast linear model, strong on small or wide data",
               "svm": "a margin classifier, competitive on small tables",
               "neural_network": "a neural network, which gains on large smooth problems",
               "nearest_neighbors": "nearest neighbours, a useful diverse model on small tables",
               "decision_tree": "one tree: fast and interpretable",
               "naive_bayes": "naive Bayes: nearly free, a quick sanity check",
               "clustering": "groups rows by similarity"}
    reason = reasons.get(cls.family, cls.description or cls.display_name)
    if n_rows and n_rows < _SMALL_ROWS and cls.family in ("linear", "svm", "nearest_neighbors"):
        quality += 0.2
        reason += f"; only {n_rows:,} rows favour simple models"
    if n_rows and n_rows < _SMALL_ROWS and cls.family == "neural_network":
        quality -= 0.2
    if n_rows >= _NEURAL_ROWS and cls.family == "neural_network":
        # Measured on the bench's 30-40k-row make_classification tables: an MLP beat every boosted model
        # by 3-7 accuracy points (smooth class boundaries, which trees cut into axis-aligned steps).
        quality += 0.2
        reason += f"; {n_rows:,} rows are enough to learn smooth interactions"
    if n_features > 200 and cls.family == "linear":
        quality += 0.1
        reason += f"; {n_features:,} features suit a regularized linear model"
    if categoricals and cls.family == "gradient_boosting":
        quality += 0.05
        reason += "; handles the categorical columns well"
    if missing and cls.handles_missing:
        quality += 0.02
    if task == REGRESSION and cls.family == "svm" and n_rows > 20 * _SMALL_ROWS:
        quality -= 0.1
    return quality, reason


def _metric(task: str, detection: Any) -> str:
    if task == "binary" and (detection.imbalance_ratio or 1.0) >= _IMBALANCED:
        return "roc_auc"
    return metric_lib.DEFAULT_METRIC[task]


def _warnings(profile: dict, target: str | None, task: str, detection: Any, plan: Any, columns: dict,
              n_rows: int) -> list[Warning_]:
    out: list[Warning_] = []
    ratio = detection.imbalance_ratio
    if task in ("binary", "multiclass") and detection.class_counts:
        minority, count = min(detection.class_counts.items(), key=lambda item: item[1])
        if ratio and ratio >= _IMBALANCED:
            share = count / max(1, sum(detection.class_counts.values()))
            out.append(Warning_("CLASS_IMBALANCE", "WARNING",
                                f"class {minority!r} is {share:.1%} of rows (imbalance ratio {ratio:.1f})", (target,),
                                "set balance_classes: true in StartTraining or StartStudy, and optimize roc_auc "
                                "or f1_macro rather than accuracy"))
        rare = [label for label, n in detection.class_counts.items() if n < 10]
        if rare:
            out.append(Warning_("RARE_CLASSES", "WARNING",
                                f"{len(rare)} class(es) have fewer than 10 rows ({', '.join(map(repr, rare[:5]))}); "
                                "they may be missing from some folds or splits", (target,),
                                "merge rare classes or collect more rows"))
    if target:
        missing = int(columns[target].get("missing_count") or 0)
        if missing:
            out.append(Warning_("TARGET_MISSING_VALUES", "WARNING",
                                f"{missing:,} row(s) have no {target!r} value and will be dropped", (target,),
                                "fill or remove them with PrepareDataset"))
    if task != CLUSTERING and n_rows < _KFOLD_ROWS:
        out.append(Warning_("FEW_ROWS", "INFO", f"only {n_rows:,} rows: a single holdout score is noisy", (),
                            "validate with k-fold (the recommended validation)"))
    for code, reason, what in (("ID_COLUMNS_IGNORED", "id column", "look like row ids"),
                               ("CONSTANT_COLUMNS_IGNORED", "constant", "hold one value")):
        names = tuple(name for name, why in plan.dropped.items() if why == reason)
        if names:
            out.append(Warning_(code, "INFO", f"{len(names)} column(s) {what} and are not used as features: "
                                              f"{', '.join(names[:10])}", names))
    mostly_missing = tuple(name for name in plan.features
                           if int(columns[name].get("missing_count") or 0) > _MOSTLY_MISSING * max(1, n_rows))
    if mostly_missing:
        out.append(Warning_("HIGH_MISSING_FRACTION", "WARNING",
                            f"{len(mostly_missing)} feature(s) are more than half missing: "
                            f"{', '.join(mostly_missing[:10])}", mostly_missing,
                            "drop them or check the source; models will mostly learn from their missingness"))
    wide = tuple(name for name in plan.features if columns[name]["type"] == "categorical"
                 and int(columns[name].get("distinct_count") or 0) > _HIGH_CARDINALITY)
    if wide:
        out.append(Warning_("HIGH_CARDINALITY_CATEGORICAL", "INFO",
                            f"{len(wide)} categorical column(s) have over {_HIGH_CARDINALITY} categories: "
                            f"{', '.join(wide[:10])}; they are target-encoded", wide))
    duplicates = int(profile.get("duplicate_row_count") or 0)
    if n_rows and duplicates > 0.05 * n_rows:
        out.append(Warning_("DUPLICATE_ROWS", "WARNING",
                            f"{duplicates:,} rows ({duplicates / n_rows:.0%}) duplicate others; validation scores may "
                            "be optimistic", (), "deduplicate with PrepareDataset (drop_duplicates)"))
    text = tuple(name for name in plan.features if columns[name]["type"] == "text")
    if text:
        out.append(Warning_("TEXT_COLUMNS", "INFO", f"free-text column(s) are used only through simple encodings: "
                                                    f"{', '.join(text[:10])}", text))
    if n_rows > _LARGE_ROWS:
        out.append(Warning_("LARGE_DATASET", "INFO", f"{n_rows:,} rows: slow estimators were excluded"))
    severity = {"WARNING": 0, "INFO": 1}
    return sorted(out, key=lambda w: severity[w.level])
