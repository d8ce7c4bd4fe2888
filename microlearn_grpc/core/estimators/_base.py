"""The estimator contract and the registry: one class per model family says what it can do and how it fits.

A class declares its tasks, search space, cost relative to LightGBM, the preprocessing it needs and the
hardware it can use; ``register_estimator`` adds it to the name → class registry the selector, trainer
and HPO read. A fitted estimator saves itself to a directory (``Estimator.save``) that ``load_estimator``
reads back. Nothing here imports a machine-learning library at import time: subclasses import theirs
inside methods.
"""

from __future__ import annotations

import abc
import difflib
import functools
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import pathlib
import pickle
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from microlearn_grpc.core.estimators._search_space import HyperparameterError, SearchSpace

logger = logging.getLogger(__name__)

BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"
CLUSTERING = "clustering"
TASKS = (BINARY, MULTICLASS, REGRESSION, CLUSTERING)
CLASSIFICATION_TASKS = frozenset({BINARY, MULTICLASS})
# Same order and spelling as the EstimatorFamily and ModelFormat enums of the protos, lower-cased.
FAMILIES = ("gradient_boosting", "tree_ensemble", "decision_tree", "linear", "nearest_neighbors", "svm",
            "naive_bayes", "neural_network", "clustering", "baseline")
MODEL_FORMATS = ("xgboost", "lightgbm", "torch_state_dict", "sklearn_pipeline")
ESTIMATOR_FILE = "estimator.json"  # written by Estimator.save next to the model files of its format
_DEVICE = re.compile(r"cpu|cuda(?::(\d+))?")

# on_iteration(step, metrics): step counts boosting rounds or epochs from 1 (0 = the only report of a
# non-iterative fit); returning False (not None) asks the fit to stop, which is how cancellation arrives.
IterationCallback = Callable[[int, dict[str, float]], "bool | None"]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop iterating once the validation metric has not improved by ``min_delta`` for ``patience`` rounds."""

    patience: int = 10
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.patience <= 10_000:
            raise ValueError(f"patience must be 1-10000, got {self.patience}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")


@dataclass(frozen=True)
class ValidationMetric:
    """The caller's task metric, which iterative fits add to their per-round reports as ``name`` (for
    example ``val_roc_auc``), computed from the validation predictions the library already holds.

    ``compute(y_val, predictions)`` gets the validation targets (class codes or numbers) and the
    predictions as ``predict_proba`` (classifiers: rows x classes, or the positive class's alone) or
    ``predict`` (regressors) would give them at that round; None means undefined on those rows. It runs
    every ``every`` rounds, and always at the last round and (under early stopping) at every new best
    one, so the value of the model kept is always reported.
    """

    name: str
    compute: Callable[[Any, Any], float | None]
    every: int = 1


class Progress:
    """Relays per-iteration metrics to the caller and remembers whether it asked to stop."""

    def __init__(self, callback: IterationCallback | None, val_metric: ValidationMetric | None = None,
                 deadline: float | None = None):
        self._callback = callback
        self.val_metric = val_metric if callback is not None else None
        self.cancelled = False
        self.deadline = deadline  # time.time() after which an iterative fit stops and keeps what it has
        self.out_of_time = False
        self.last_step: int | None = None

    @property
    def wanted(self) -> bool:
        return self._callback is not None

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Send one step's metrics; False means stop now."""
        if self.last_step is not None and step <= self.last_step:
            raise RuntimeError(f"steps must increase: {step} after {self.last_step}")
        self.last_step = step
        if self._callback is not None and self._callback(step, dict(metrics)) is False:
            self.cancelled = True
        if not self.cancelled and self.deadline is not None and time.time() >= self.deadline:
            self.out_of_time = True
        return not (self.cancelled or self.out_of_time)


class Estimator(abc.ABC):
    """One model family. Subclasses set the class attributes, ``search_space``, ``_build`` and ``_fit``.

    Hyperparameters given to the constructor are checked against the space for an unknown data size
    (the widest one); the ones left out take the defaults adapted to the data when ``fit`` sees it.
    A fitted estimator pickles; store it whole rather than ``model_`` alone, since some predict rules
    (DBSCAN's, agglomerative clustering's) live on it. ``save`` writes it to a directory, in its library's
    native format where it has one, and ``load_estimator`` reads it back.
    """

    name: ClassVar[str]  # registry key, e.g. "random_forest_classifier"
    display_name: ClassVar[str]
    description: ClassVar[str] = ""  # what it is and when it does well
    family: ClassVar[str]  # one of FAMILIES
    tasks: ClassVar[frozenset[str]]
    library: ClassVar[str]  # distribution name, for the version and messages ("scikit-learn")
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules it needs; empty means (library,)
    distributions: ClassVar[tuple[str, ...]] = ()  # installed packages that provide it; empty means (library,)
    install_hint: ClassVar[str] = ""  # how to get the library, e.g. "pip install 'microlearn[torch]'"
    model_format: ClassVar[str]  # one of MODEL_FORMATS
    relative_cost: ClassVar[float] = 1.0  # fit time with defaults vs. LightGBM on the same data (FLAML's idea)
    relative_cost_gpu: ClassVar[float | None] = None  # the same on a GPU, for supports_gpu estimators
    # The hyperparameter counting boosting rounds or epochs, which a job's max_iterations sets; None when
    # the fit is not iterative.
    iterations_param: ClassVar[str | None] = None
    supports_iteration_progress: ClassVar[bool] = False
    supports_early_stopping: ClassVar[bool] = False
    supports_gpu: ClassVar[bool] = False
    supports_class_weights: ClassVar[bool] = False
    needs_scaling: ClassVar[bool] = False  # features must be standardized first
    handles_missing: ClassVar[bool] = False  # otherwise missing values are imputed first
    handles_categorical: ClassVar[bool] = False  # otherwise categorical columns are encoded first
    max_rows: ClassVar[int | None] = None  # beyond this it is too slow (selection skips it or samples)
    max_features: ClassVar[int | None] = None

    # -- self-description -------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def search_space(cls, task: str, n_rows: int | None = None, n_features: int | None = None) -> SearchSpace:
        """The space for ``task`` adapted to the data size; None means unknown (the widest space, which is
        also what requested hyperparameters are checked against). Pure: it must not import the model's
        library, since it also describes estimators that are not installed. ValueError for other tasks."""

    @classmethod
    def default_params(cls, task: str, n_rows: int | None = None, n_features: int | None = None) -> dict[str, Any]:
        return cls.search_space(task, n_rows, n_features).defaults()

    @classmethod
    def check_task(cls, task: str) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if task not in cls.tasks:
            supported = ", ".join(t for t in TASKS if t in cls.tasks)
            raise ValueError(f"{cls.name} does not support task {task!r} (it supports {supported})")

    @classmethod
    def is_available(cls) -> bool:
        """Whether its library can be imported here (checked without importing it)."""
        for module in cls.requires or (cls.library,):
            try:
                if importlib.util.find_spec(module) is None:
                    return False
            except (ImportError, ValueError):
                return False
        return True

    @classmethod
    def unavailable_reason(cls) -> str:
        if cls.is_available():
            return ""
        return f"{cls.library} is not installed ({cls.install_hint or 'pip install ' + cls.library})"

    @classmethod
    def library_version(cls) -> str | None:
        return _installed_version(cls.distributions or (cls.library,))

    @classmethod
    def check_data_size(cls, n_rows: int, n_features: int) -> str | None:
        """Why the data is too large for this estimator, or None when it fits."""
        if cls.max_rows is not None and n_rows > cls.max_rows:
            return f"too slow for {n_rows:,} rows (at most {cls.max_rows:,})"
        if cls.max_features is not None and n_features > cls.max_features:
            return f"too slow for {n_features:,} features (at most {cls.max_features:,})"
        return None

    @classmethod
    def describe(cls, task: str | None = None, n_rows: int | None = None,
                 n_features: int | None = None) -> dict[str, Any]:
        """The fields of the proto ``Estimator`` message, with plain values (task and family names, not enums)."""
        task = task or next(t for t in TASKS if t in cls.tasks)
        space = cls.search_space(task, n_rows, n_features)
        version = cls.library_version()
        return {
            "name": f"estimators/{cls.name}", "estimator_id": cls.name, "display_name": cls.display_name,
            "description": cls.description, "family": cls.family,
            "supported_tasks": [t for t in TASKS if t in cls.tasks],
            "default_hyperparameters": space.defaults(), "search_space": space.to_dict(),
            "relative_cost": cls.relative_cost, "supports_iteration_progress": cls.supports_iteration_progress,
            "supports_early_stopping": cls.supports_early_stopping, "supports_gpu": cls.supports_gpu,
            "supports_class_weights": cls.supports_class_weights, "handles_missing_values": cls.handles_missing,
            "handles_categorical": cls.handles_categorical, "model_format": cls.model_format,
            "library": f"{cls.library} {version}" if version else cls.library,
            "available": cls.is_available(), "unavailable_reason": cls.unavailable_reason(),
        }

    # -- one configured instance --------------------------------------------------------------------

    def __init__(self, task: str, params: Mapping[str, Any] | None = None, *, seed: int = 0, n_jobs: int = 1,
                 device: str = "cpu", balance_classes: bool = False):
        self.check_task(task)
        if not _DEVICE.fullmatch(device):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        if n_jobs == 0 or n_jobs < -1:
            raise ValueError(f"n_jobs must be a positive number of threads or -1 (all), got {n_jobs}")
        if device != "cpu" and not self.supports_gpu:
            raise ValueError(f"{self.name} cannot run on {device!r}: it is CPU-only")
        if balance_classes and not (self.supports_class_weights and task in CLASSIFICATION_TASKS):
            raise ValueError(f"{self.name} cannot reweight classes for task {task!r}")
        params = dict(params or {})
        try:
            checked = self.search_space(task).validate(params)
        except HyperparameterError as exc:
            raise HyperparameterError(f"{self.name}: {exc}", parameter=exc.parameter) from None
        self.task = task
        self.params = {name: checked[name] for name in params}  # only what was asked for, normalized
        self.seed = seed
        self.n_jobs = n_jobs
        self.device = device
        self.balance_classes = balance_classes
        self.model_: Any = None
        self.params_: dict[str, Any] | None = None
        self.n_iterations_: int | None = None
        self.best_iteration_: int | None = None  # rounds the fitted model predicts with (iterative fits only)
        self.stop_reason_: str | None = None  # None, "early_stopping" or "cancelled"
        self.fit_seconds_: float | None = None
        self._labels: Any = None  # clustering: the cluster of each training row

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, params={self.params!r})"

    @property
    def gpu_index(self) -> int | None:
        """The CUDA device number to train on, or None for the CPU."""
        match = _DEVICE.fullmatch(self.device)
        return None if self.device == "cpu" or match is None else int(match.group(1) or 0)

    def resolved_params(self, n_rows: int | None = None, n_features: int | None = None) -> dict[str, Any]:
        """The requested hyperparameters completed with the defaults for this data size."""
        return self.search_space(self.task, n_rows, n_features).with_defaults(self.params)

    def build(self, n_rows: int | None = None, n_features: int | None = None) -> Any:
        """The unfitted model object of the underlying library."""
        return self._build(self.resolved_params(n_rows, n_features))

    @abc.abstractmethod
    def _build(self, params: dict[str, Any]) -> Any:
        """The unfitted model for complete, valid hyperparameters."""

    @abc.abstractmethod
    def _fit(self, params: dict[str, Any], X: Any, y: Any, X_val: Any, y_val: Any, progress: Progress,
             early_stopping: EarlyStopping | None) -> Any:
        """Fit and return the fitted model; iterative ones report each round to ``progress`` and set
        ``n_iterations_`` and ``stop_reason_``."""

    def _check_data(self, params: dict[str, Any], n_rows: int, n_features: int) -> None:
        """Refuse hyperparameters the data cannot support (for example more neighbours than rows)."""

    def fit(self, X: Any, y: Any = None, *, X_val: Any = None, y_val: Any = None,
            on_iteration: IterationCallback | None = None, early_stopping: EarlyStopping | None = None,
            val_metric: ValidationMetric | None = None, deadline: float | None = None) -> Estimator:
        """Fit on ``X``/``y``; iterative estimators report each round to ``on_iteration``, adding
        ``val_metric`` when given and there are validation rows, and stop at ``deadline`` (a
        ``time.time()``) with the rounds done so far (``stop_reason_`` "time_limit")."""
        supervised = self.task != CLUSTERING
        if supervised and y is None:
            raise ValueError(f"{self.name} needs a target for task {self.task!r}")
        if supervised and (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together")
        if early_stopping is not None and not self.supports_early_stopping:
            logger.warning("%s does not support early stopping; it trains with its full budget", self.name)
            early_stopping = None
        n_rows, n_features = _shape(X)
        params = self.resolved_params(n_rows, n_features)
        self._check_data(params, n_rows, n_features)
        progress = Progress(on_iteration, val_metric, deadline)
        self.model_, self.n_iterations_, self.best_iteration_, self.stop_reason_ = None, None, None, None
        started = time.perf_counter()
        model = self._fit(params, X, y, X_val, y_val, progress, early_stopping)
        self.fit_seconds_ = time.perf_counter() - started
        self.model_, self.params_ = model, params
        if not self.supports_iteration_progress:
            progress.report(0, {"fit_seconds": self.fit_seconds_})
        return self

    # -- using the fitted model ---------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return self.model_ is not None

    def _fitted(self) -> Any:
        if self.model_ is None:
            raise RuntimeError(f"{self.name} is not fitted yet; call fit() first")
        return self.model_

    def predict(self, X: Any) -> Any:
        """Class labels, values, or (clustering) the cluster of each row."""
        return self._fitted().predict(X)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, columns in the order of ``classes_`` (classification only)."""
        if self.task not in CLASSIFICATION_TASKS:
            raise NotImplementedError(f"{self.name} gives no probabilities for task {self.task!r}")
        return self._fitted().predict_proba(X)

    @property
    def classes_(self) -> Any:
        if self.task not in CLASSIFICATION_TASKS:
            raise AttributeError(f"{self.name} has no classes for task {self.task!r}")
        return self._fitted().classes_

    @property
    def labels_(self) -> Any:
        """The cluster of each training row (clustering only)."""
        if self.task != CLUSTERING:
            raise AttributeError(f"{self.name} has no cluster labels for task {self.task!r}")
        self._fitted()
        return self._labels

    def fit_predict(self, X: Any) -> Any:
        """Fit on ``X`` and return the cluster of each row (clustering only)."""
        if self.task != CLUSTERING:
            raise NotImplementedError("fit_predict is for clustering; use fit(X, y) then predict(X)")
        return self.fit(X).labels_

    # -- persistence --------------------------------------------------------------------------------

    def save(self, directory: pathlib.Path) -> list[str]:
        """Write the fitted estimator into ``directory`` (existing and empty) and return the file names written:
        ``estimator.json`` (what it is and how it was fitted), then the model files of its format."""
        self._fitted()
        directory = pathlib.Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a directory")
        if any(directory.iterdir()):
            raise FileExistsError(f"{directory} is not empty: an estimator is saved into an empty directory")
        meta = {"name": self.name, "task": self.task, "params_": self.params_, "n_iterations_": self.n_iterations_,
                "best_iteration_": self.best_iteration_, "stop_reason_": self.stop_reason_,
                "fit_seconds_": self.fit_seconds_, "seed": self.seed, "format": self.model_format,
                "library_version": self.library_version()}
        (directory / ESTIMATOR_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return [ESTIMATOR_FILE, *self._save(directory)]

    def _save(self, directory: pathlib.Path) -> list[str]:
        """Write the model files and return their names. This default pickles the whole estimator, since
        some predict rules (DBSCAN's, agglomerative clustering's) live on it rather than on ``model_``."""
        with open(directory / "model.pkl", "wb") as file:
            pickle.dump(self, file, protocol=5)
        return ["model.pkl"]

    @classmethod
    def _load(cls, directory: pathlib.Path, meta: dict[str, Any]) -> Estimator:
        """The estimator ``_save`` wrote, on the CPU; ``meta`` is the content of ``estimator.json``."""
        with open(directory / "model.pkl", "rb") as file:
            estimator = pickle.load(file)
        if type(estimator) is not cls:
            raise ValueError(f"model.pkl holds a {type(estimator).__qualname__}, not a {cls.__qualname__}")
        return estimator

    @classmethod
    def _restore(cls, meta: Mapping[str, Any]) -> Estimator:
        """An instance with the fitted state recorded in ``estimator.json``, ready for ``_load`` to add the
        model; its hyperparameters are taken as recorded (they were checked when it was fitted)."""
        estimator = cls(meta["task"], seed=int(meta["seed"]))
        estimator.params = dict(meta["params_"])
        estimator.params_ = dict(meta["params_"])
        estimator.n_iterations_ = meta.get("n_iterations_")
        estimator.best_iteration_ = meta.get("best_iteration_")
        estimator.stop_reason_ = meta.get("stop_reason_")
        estimator.fit_seconds_ = meta.get("fit_seconds_")
        return estimator


@functools.lru_cache(maxsize=None)
def _installed_version(distributions: tuple[str, ...]) -> str | None:
    """The version of the first of these distributions installed (reading package metadata costs a few
    ms, and a fit asks more than once)."""
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _shape(X: Any) -> tuple[int, int]:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[0]), int(shape[1])
    rows = len(X)
    return rows, (len(X[0]) if rows else 0)


# -- the registry ---------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Estimator]] = {}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _check_declaration(cls: type) -> None:
    if not (inspect.isclass(cls) and issubclass(cls, Estimator)):
        raise TypeError(f"{cls!r} is not an Estimator subclass")
    if inspect.isabstract(cls):
        raise TypeError(f"{cls.__qualname__} leaves abstract methods: {sorted(cls.__abstractmethods__)}")
    where = cls.__qualname__
    for attr in ("name", "display_name", "family", "tasks", "library", "model_format"):
        if not getattr(cls, attr, None):
            raise ValueError(f"{where} must declare {attr}")
    if not _NAME.fullmatch(cls.name):
        raise ValueError(f"{where}.name {cls.name!r} must be lower_snake_case (a resource id)")
    if cls.family not in FAMILIES:
        raise ValueError(f"{where}.family {cls.family!r} is not one of {FAMILIES}")
    if cls.model_format not in MODEL_FORMATS:
        raise ValueError(f"{where}.model_format {cls.model_format!r} is not one of {MODEL_FORMATS}")
    cls.tasks = frozenset(cls.tasks)
    if not cls.tasks <= set(TASKS):
        raise ValueError(f"{where}.tasks {sorted(cls.tasks)} are not all in {TASKS}")
    if not cls.relative_cost > 0 or (cls.relative_cost_gpu is not None and not cls.relative_cost_gpu > 0):
        raise ValueError(f"{where} relative costs must be positive")
    for attr in ("max_rows", "max_features"):
        limit = getattr(cls, attr)
        if limit is not None and not (isinstance(limit, int) and limit > 0):
            raise ValueError(f"{where}.{attr} must be a positive int or None")
    for task in cls.tasks:  # a broken space should fail at import, not in the middle of a study
        if cls.iterations_param is not None and cls.iterations_param not in cls.search_space(task):
            raise ValueError(f"{where}.iterations_param {cls.iterations_param!r} is not in its {task} space")
        cls.search_space(task, 50, 5)


def register_estimator(cls: type[Estimator]) -> type[Estimator]:
    """Add an estimator class to the registry (usable as a decorator). A name can be registered once."""
    _check_declaration(cls)
    if cls.name in _REGISTRY:
        raise ValueError(f"estimator {cls.name!r} is already registered ({_REGISTRY[cls.name].__qualname__})")
    _REGISTRY[cls.name] = cls
    return cls


def unregister_estimator(name: str) -> type[Estimator]:
    """Remove an estimator from the registry and return its class (for plugins and tests)."""
    return _REGISTRY.pop(get_estimator(name).name)


def get_estimator(name: str) -> type[Estimator]:
    """The estimator class for a registry id (or ``estimators/{id}``); KeyError lists the known ids."""
    key = name.removeprefix("estimators/")
    try:
        return _REGISTRY[key]
    except KeyError:
        close = difflib.get_close_matches(key, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown estimator {name!r}{hint}; known: {', '.join(sorted(_REGISTRY))}") from None


def load_estimator(directory: pathlib.Path) -> Estimator:
    """The estimator ``Estimator.save`` wrote into ``directory``, on the CPU. The caller checks the files'
    integrity first: a pickled model runs code when it is read. KeyError for an estimator not registered
    here, ValueError for files of another format."""
    directory = pathlib.Path(directory)
    meta = json.loads((directory / ESTIMATOR_FILE).read_text())
    cls = get_estimator(meta["name"])
    if meta.get("format") != cls.model_format:
        raise ValueError(f"{directory} holds a {meta.get('format')!r} model; {cls.name} stores {cls.model_format!r}")
    return cls._load(directory, meta)


def list_estimators(task: str | None = None, *, available_only: bool = False) -> list[type[Estimator]]:
    """Registered estimators, cheapest first, optionally only those for ``task`` or installed here."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    found = [cls for cls in _REGISTRY.values()
             if (task is None or task in cls.tasks) and (not available_only or cls.is_available())]
    return sorted(found, key=lambda cls: (cls.relative_cost, cls.name))
