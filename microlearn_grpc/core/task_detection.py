"""Which learning task a target column poses, decided from the dataset profile alone (no pass over the data).

`detect_task` applies these rules in order (close to AutoGluon's `infer_problem_type`, with the integer
limit the profiler's target suggestions use):
1. no target: clustering;
2. boolean, or exactly 2 distinct non-missing values of any type: binary;
3. numbers (integer, float or decimal storage, unless hinted categorical):
   fractional values (the minimum, maximum or a top value is not whole): regression;
   whole numbers with at most 20 distinct values: multiclass (codes such as ratings or class ids);
   whole numbers with more: regression;
4. dates and times: refused (predict a number derived from them instead);
5. anything else (categories, text, ids): multiclass with 3 to 1,000 distinct values, refused above.
A target must exist, have a value in some row and hold at least 2 distinct values.
`check_task` validates a task the user chose instead. Errors are ValueError with a message for the user.
"""

from __future__ import annotations

from dataclasses import dataclass

from microlearn_grpc.core.estimators._base import BINARY, CLUSTERING, MULTICLASS, REGRESSION, TASKS

__all__ = ["MAX_CLASSES", "MAX_INTEGER_CLASSES", "TaskDetection", "check_task", "detect_task"]

MAX_CLASSES = 1000
MAX_INTEGER_CLASSES = 20  # whole-number targets with more distinct values are quantities
_IMBALANCE_WARNING = 10.0  # majority/minority count ratio worth a warning
_SMALL_CLASS = 5  # rows; fewer leave a class all but unlearnable
_SHOWN_VALUES = 5
_NUMERIC_STORAGE = ("int", "uint", "float", "double", "halffloat", "decimal")


@dataclass(frozen=True)
class TaskDetection:
    """The task for a target and the statistics behind it."""

    task: str
    reason: str  # one sentence with the numbers, for the user
    n_classes: int | None  # distinct target values, classification only
    class_counts: dict[str, int]  # label -> rows, most frequent first (the profile's top 10 values)
    imbalance_ratio: float | None  # majority/minority rows, when every class is in class_counts
    warnings: tuple[str, ...] = ()
    confidence: float = 1.0  # 0-1: low where another task is as plausible
    alternatives: tuple[str, ...] = ()  # other tasks the target could reasonably pose


@dataclass(frozen=True)
class _Target:
    name: str
    kind: str  # semantic type from the profile
    physical: str
    distinct: int
    exact: bool
    missing: int
    rows: int
    top: tuple[tuple[str, int], ...]
    bounds: tuple[float, ...]  # minimum and maximum of a numeric column

    @property
    def numeric(self) -> bool:
        return self.physical.startswith(_NUMERIC_STORAGE)

    @property
    def as_numbers(self) -> bool:
        """Numbers to be read as numbers: numeric storage not hinted categorical."""
        return self.numeric and self.kind != "categorical"

    @property
    def complete(self) -> bool:
        """Whether `top` lists every distinct value."""
        return self.exact and len(self.top) == self.distinct

    def values(self) -> str:
        shown = ", ".join(value for value, _ in self.top[:_SHOWN_VALUES])
        return shown + (", ..." if self.distinct > _SHOWN_VALUES else "")

    def fraction(self) -> str | None:
        """A fractional value among the top values, minimum and maximum, or None when they are all whole."""
        for value in [value for value, _ in self.top] + [repr(bound) for bound in self.bounds]:
            try:
                if not float(value).is_integer():
                    return value
            except (ValueError, OverflowError):  # inf, nan: not a whole number either
                return value
        return None


def detect_task(profile: dict, target: str | None) -> TaskDetection:
    """The task `target` poses (rules in the module docstring); clustering without a target."""
    if not target:
        return TaskDetection(CLUSTERING, "no target column: rows are grouped by similarity (clustering)", None, {},
                             None)
    t = _target(profile, target)
    name = f"target {t.name!r}"
    if t.distinct == 2:
        return _classification(t, BINARY, f"{name} has 2 distinct values ({t.values()})",
                               1.0 if t.kind == "boolean" else 0.95)
    if t.as_numbers:
        fraction = t.fraction()
        if fraction is not None:
            reason = (f"{name} is numeric with fractional values (for example {fraction}) and {_count(t)} distinct "
                      "values")
            return _regression(t, reason, 0.95, ())
        notes = (f"{name} is strictly increasing, like a row number; check that it is the column to predict",
                 ) if t.kind == "id" else ()
        if t.exact and t.distinct <= MAX_INTEGER_CLASSES:
            reason = (f"{name} holds whole numbers with {t.distinct} distinct values ({t.values()}), at most "
                      f"{MAX_INTEGER_CLASSES}, so each value is a class")
            hint = (f"{name} holds numbers treated as {t.distinct} classes; if they measure an amount, set the "
                    "task to regression")
            return _classification(t, MULTICLASS, reason, 0.8 if t.distinct <= 5 else 0.6, (REGRESSION,), (hint,))
        reason = (f"{name} holds whole numbers with {_count(t)} distinct values, more than {MAX_INTEGER_CLASSES}, so "
                  "it is treated as a quantity")
        alternatives = (MULTICLASS,) if t.exact and t.distinct <= MAX_CLASSES else ()
        return _regression(t, reason, 0.8, alternatives, notes)
    if t.kind == "datetime":
        raise ValueError(f"{name} holds dates or times ({_count(t)} distinct values), which cannot be predicted "
                         "directly; derive a number (for example days until an event) or categories from it")
    if not t.exact or t.distinct > MAX_CLASSES:
        raise ValueError(f"{name} is {t.kind} ({t.physical}) with {_count(t)} distinct values: too many classes "
                         f"to classify (at most {MAX_CLASSES}), and not numeric, so not a regression target either")
    reason = f"{name} is {t.kind} with {t.distinct} distinct values ({t.values()})"
    notes = ()
    if t.kind in ("text", "id"):
        notes = (f"{name} looks like {'free text' if t.kind == 'text' else 'an identifier'}; each of its "
                 f"{t.distinct} values is treated as a class",)
    return _classification(t, MULTICLASS, reason, 0.5 if notes else 0.95, (), notes)


def check_task(profile: dict, target: str | None, task: str) -> TaskDetection:
    """The detection for a task the user chose, or ValueError naming `spec.task` when the target cannot pose it."""
    if task not in TASKS:
        raise ValueError(f"spec.task: unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if task == CLUSTERING:
        if target:
            raise ValueError(f"spec.task: clustering takes no target, but spec.target is {target!r}; leave "
                             "spec.target empty or choose another task")
        return detect_task(profile, None)
    if not target:
        raise ValueError(f"spec.target: a {task} task needs a target column")
    t = _target(profile, target)
    name = f"target {t.name!r}"
    if task == REGRESSION and (not t.numeric or t.kind == "boolean"):
        raise ValueError(f"spec.task: regression needs a numeric target, but {name} is {t.kind} ({t.physical}); "
                         f"choose {' or '.join(_others(t, REGRESSION))}")
    if task == BINARY and t.distinct != 2:
        raise ValueError(f"spec.task: binary needs a target with exactly 2 distinct values, but {name} has "
                         f"{_count(t)}; choose {' or '.join(_others(t, BINARY))}")
    if task == MULTICLASS and not (t.exact and 3 <= t.distinct <= MAX_CLASSES):
        raise ValueError(f"spec.task: multiclass needs a target with 3 to {MAX_CLASSES} distinct values, but "
                         f"{name} has {_count(t)}; choose {' or '.join(_others(t, MULTICLASS))}")
    try:
        detected: TaskDetection | None = detect_task(profile, target)
    except ValueError:
        detected = None
    notes = ()
    if detected is not None and detected.task != task:
        notes = (f"the task is set to {task}, but detection would choose {detected.task}: {detected.reason}",)
    reason = f"task {task} was set in the spec; {name} has {_count(t)} distinct values"
    if task == REGRESSION:
        return _regression(t, reason, 1.0, (), notes)
    return _classification(t, task, reason, 1.0, (), notes)


def _target(profile: dict, target: str) -> _Target:
    columns = {c["name"]: c for c in profile["columns"]}
    if target not in columns:
        names = list(columns)
        shown = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50 else "")
        raise ValueError(f"target {target!r} is not a column of the dataset; the columns are: {shown}")
    c = columns[target]
    rows = int(profile["row_count"])
    t = _Target(name=target, kind=c["type"], physical=c["physical_type"], distinct=int(c["distinct_count"]),
                exact=bool(c.get("distinct_count_exact", True)), missing=int(c["missing_count"]), rows=rows,
                top=tuple((str(v["value"]), int(v["count"])) for v in c.get("top_values") or ()),
                bounds=tuple(float(c["numeric"][key]) for key in ("min", "max")) if c.get("numeric") else ())
    if t.missing >= rows:
        raise ValueError(f"target {target!r} has no values: it is missing in all {rows} rows")
    if t.distinct < 2:
        raise ValueError(f"target {target!r} has the same value ({t.values()}) in every row with a value; there is "
                         "nothing to predict")
    return t


def _others(t: _Target, refused: str) -> list[str]:
    """The tasks other than `refused` the target can pose (for a refusal's suggestion)."""
    possible = [BINARY] if t.distinct == 2 else [MULTICLASS] if t.exact and t.distinct <= MAX_CLASSES else []
    if t.numeric and t.kind != "boolean":
        possible.append(REGRESSION)
    return [task for task in possible if task != refused] or ["another target"]


def _count(t: _Target) -> str:
    return str(t.distinct) if t.exact else f"more than {t.distinct}"


def _common_warnings(t: _Target) -> list[str]:
    if not t.missing:
        return []
    return [f"target {t.name!r} is missing in {t.missing} of {t.rows} rows ({t.missing / t.rows:.1%}); those rows "
            "are left out of training"]


def _classification(t: _Target, task: str, reason: str, confidence: float, alternatives: tuple[str, ...] = (),
                    notes: tuple[str, ...] = ()) -> TaskDetection:
    counts = dict(t.top)
    ratio = None
    found = _common_warnings(t)
    if t.complete and counts:
        ratio = max(counts.values()) / min(counts.values())
        minority = min(counts, key=counts.get)
        share = counts[minority] / sum(counts.values())
        if ratio >= _IMBALANCE_WARNING:
            found.append(f"classes are imbalanced: {minority!r} is {share:.1%} of the rows (imbalance ratio "
                         f"{ratio:.3g}); consider balance_classes and a metric such as roc_auc or f1_macro")
    small = [label for label, n in counts.items() if n < _SMALL_CLASS]
    if small:
        found.append(f"class{'es' if len(small) > 1 else ''} {', '.join(repr(s) for s in small[:_SHOWN_VALUES])} "
                     f"{'have' if len(small) > 1 else 'has'} fewer than {_SMALL_CLASS} rows; a model can hardly "
                     "learn them and validation may not see them")
    return TaskDetection(task, reason, t.distinct, counts, ratio, notes + tuple(found), confidence, alternatives)


def _regression(t: _Target, reason: str, confidence: float, alternatives: tuple[str, ...],
                notes: tuple[str, ...] = ()) -> TaskDetection:
    return TaskDetection(REGRESSION, reason, None, {}, None, notes + tuple(_common_warnings(t)), confidence,
                         alternatives)
