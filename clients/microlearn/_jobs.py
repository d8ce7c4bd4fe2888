"""Training jobs as the SDK returns them: the `Job`/`AsyncJob` handles, their events, the
TrainingSpec built from `train()`'s arguments, and the errors a job that did not succeed raises.

The errors are not call failures (those are `MicroLearnError`): the calls worked, the job did not.

* JobError               - a job ended without succeeding; `.name`, `.state`, `.reason`, `.job`
    + JobFailed          - it ended FAILED (bad data, a crash, its timeout); `.reason` is the server's text
    + JobCancelled       - it ended CANCELLED (someone cancelled it; `.reason` says who or why)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from microlearn import _convert
from microlearn._errors import DeadlineExceeded
from microlearn.v1 import common_pb2, trainer_pb2

if TYPE_CHECKING:
    from microlearn._aio import AsyncClient
    from microlearn._client import Client
    from microlearn._models import Model

__all__ = ["AsyncJob", "Job", "JobCancelled", "JobError", "JobEvent", "JobFailed"]

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})

_Handle = TypeVar("_Handle", bound="_JobView")

# When an event stream ends before the job does (a server restart), wait this long before resuming.
_RESUME_DELAY = 0.5


# --- errors ------------------------------------------------------------------------------------


class JobError(Exception):
    """A job ended without succeeding. `str(err)` reads ``"jobs/ab12 FAILED: <reason>"``."""

    def __init__(self, name: str, state: str, reason: str, job: Any = None) -> None:
        self.name = name
        self.state = state
        self.reason = reason
        self.job = job  # the Job/AsyncJob handle, when raised by one
        super().__init__(f"{name} {state}: {reason}" if reason else f"{name} {state}")

    def __reduce__(self):  # picklable without the handle (it holds a channel)
        return (self.__class__, (self.name, self.state, self.reason))


class JobFailed(JobError):
    """The job ended FAILED; `.reason` is the server's error text."""


class JobCancelled(JobError):
    """The job ended CANCELLED; `.reason` says who cancelled it, or why."""


# --- labels ------------------------------------------------------------------------------------


def job_state_name(value: int) -> str:
    """JOB_STATE_RUNNING -> "RUNNING"."""
    return _convert.enum_label(value, common_pb2.JobState, "JOB_STATE_").upper()


def job_state(name: str) -> int:
    """"running" or "RUNNING" -> JOB_STATE_RUNNING."""
    try:
        return common_pb2.JobState.Value(f"JOB_STATE_{name.upper()}")
    except ValueError:
        known = ", ".join(sorted(TERMINAL_STATES | {"PENDING", "RUNNING"}))
        raise ValueError(f"unknown job state {name!r}; expected one of {known}") from None


def log_level(name: str | None) -> int:
    """"warning" or "WARNING" -> LOG_LEVEL_WARNING; None -> UNSPECIFIED (every log line)."""
    if not name:
        return common_pb2.LOG_LEVEL_UNSPECIFIED
    try:
        return common_pb2.LogLevel.Value(f"LOG_LEVEL_{name.upper()}")
    except ValueError:
        raise ValueError(f"unknown log level {name!r}; expected DEBUG, INFO, WARNING or ERROR") from None


def timestamp(message: Message, field: str) -> dt.datetime | None:
    """A Timestamp field as an aware UTC datetime; None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.timezone.utc)


# --- events ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's event stream. `kind` says which fields carry it:

    * ``"state"``: `state` (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED) and `message` (why)
    * ``"metrics"``: `step` (iteration, round or epoch) and `values` (``{"val_loss": 0.41, ...}``)
    * ``"log"``: `level` (DEBUG, INFO, WARNING, ERROR) and `message`

    `sequence` resumes a stream after this event (`after=`); `progress` is 0.0 to 1.0; `proto`
    is the JobEvent message itself.
    """

    kind: str
    sequence: str
    job: str
    time: dt.datetime | None
    progress: float
    state: str | None = None
    message: str = ""
    level: str | None = None
    step: int | None = None
    values: dict[str, float] = dataclasses.field(default_factory=dict)
    proto: common_pb2.JobEvent | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, event: common_pb2.JobEvent) -> JobEvent:
        common = dict(sequence=event.sequence, job=event.job, time=timestamp(event, "time"),
                      progress=event.progress, proto=event)
        payload = event.WhichOneof("payload")
        if payload == "state_change":
            return cls("state", state=job_state_name(event.state_change.state),
                       message=event.state_change.message, **common)
        if payload == "metrics":
            points = event.metrics.points
            return cls("metrics", step=max((p.step for p in points), default=0),
                       values={p.name: p.value for p in points}, **common)
        if payload == "log":
            level = _convert.enum_label(event.log.level, common_pb2.LogLevel, "LOG_LEVEL_").upper()
            return cls("log", level=level, message=event.log.message, **common)
        return cls(payload or "unknown", **common)

    @property
    def is_terminal(self) -> bool:
        """True for the state change that ends the job (the stream's last event)."""
        return self.kind == "state" and self.state in TERMINAL_STATES


def headline_metric(values: Mapping[str, float], metric: str = "") -> tuple[str, float] | None:
    """The one value of a metrics event worth showing: the validation loss, else the validation
    (or per-fold) value of the job's metric, else any validation value, else the first one."""
    candidates = ["val_loss", f"val_{metric}", f"fold_{metric}", metric] if metric else ["val_loss"]
    for name in candidates:
        if name in values:
            return name, values[name]
    for name, value in values.items():
        if name.startswith("val_"):
            return name, value
    return next(iter(values.items()), None)


# --- the training request ----------------------------------------------------------------------

_VALIDATION_METHODS = ("holdout", "k_fold", "dataset")
_VALIDATION_KEYS = frozenset({*_VALIDATION_METHODS, "stratify", "group_column", "time_column"})
_EARLY_STOPPING_KEYS = frozenset({"enabled", "patience", "min_delta"})


def _unknown_keys(given: Mapping[str, Any], known: frozenset[str], what: str) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")


def hyperparameter_value(name: str, value: Any) -> struct_pb2.Value:
    """A JSON-like value (number, string, bool, None, list, dict; numpy scalars too) as a Value."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python scalar
    try:
        return json_format.ParseDict(value, struct_pb2.Value())
    except (json_format.ParseError, TypeError, AttributeError):
        raise TypeError(f"hyperparameter {name!r}: {value!r} is not a JSON value") from None


def validation_strategy(validation: Mapping[str, Any]) -> common_pb2.ValidationStrategy:
    """`{"holdout": 0.2}`, `{"k_fold": 5}` or `{"dataset": "churn-test"}`, optionally with
    `stratify`, `group_column` or `time_column`, as a ValidationStrategy."""
    if not isinstance(validation, Mapping):
        raise TypeError('validation must be a dict such as {"holdout": 0.2} or {"k_fold": 5}')
    _unknown_keys(validation, _VALIDATION_KEYS, "validation")
    methods = [key for key in _VALIDATION_METHODS if validation.get(key) is not None]
    if len(methods) > 1:
        raise ValueError(f"validation takes one of holdout, k_fold or dataset, not {' and '.join(methods)}")
    message = common_pb2.ValidationStrategy(group_column=validation.get("group_column") or "",
                                            time_column=validation.get("time_column") or "")
    if "holdout" in methods:
        message.holdout.fraction = float(validation["holdout"])
    elif "k_fold" in methods:
        message.k_fold.folds = int(validation["k_fold"])
    elif "dataset" in methods:
        message.validation_dataset = str(validation["dataset"])
    if validation.get("stratify") is not None:
        message.stratify = bool(validation["stratify"])
    return message


def early_stopping_message(early_stopping: bool | Mapping[str, Any]) -> common_pb2.EarlyStopping | None:
    """True, False, or `{"patience": 10, "min_delta": 0.001}` (which turns it on)."""
    if isinstance(early_stopping, bool):
        return common_pb2.EarlyStopping(enabled=True) if early_stopping else None
    if not isinstance(early_stopping, Mapping):
        raise TypeError('early_stopping must be a bool or a dict such as {"patience": 10}')
    _unknown_keys(early_stopping, _EARLY_STOPPING_KEYS, "early_stopping")
    if not early_stopping.get("enabled", True):
        return None
    return common_pb2.EarlyStopping(enabled=True, patience=int(early_stopping.get("patience") or 0),
                                    min_delta=float(early_stopping.get("min_delta") or 0.0))


def _columns(columns: Sequence[str], argument: str) -> list[str]:
    if isinstance(columns, str):
        raise TypeError(f"{argument} must be a list of column names, not a str")
    return list(columns)


def training_request(
    dataset: str,
    *,
    target: str | None,
    estimator: str,
    hyperparameters: Mapping[str, Any] | None,
    task: str | None,
    metric: str | None,
    validation: Mapping[str, Any] | None,
    max_iterations: int,
    early_stopping: bool | Mapping[str, Any] | None,
    seed: int | None,
    use_gpu: bool | None,
    balance_classes: bool,
    feature_columns: Sequence[str],
    ignore_columns: Sequence[str],
    experiment: str | None,
    labels: Mapping[str, str] | None,
    timeout_seconds: int,
    request_id: str | None,
    importance: bool = False,
) -> trainer_pb2.StartTrainingRequest:
    """`Client.train`'s arguments as a StartTrainingRequest; arguments of the wrong shape raise
    TypeError/ValueError here, everything else is the server's to judge."""
    if not estimator:
        raise ValueError("estimator is required, e.g. 'hist_gradient_boosting_classifier' "
                         "(Client.list_estimators() lists them)")
    spec = trainer_pb2.TrainingSpec(
        dataset=dataset,
        target=target or "",
        task=_convert.task_type(task),
        estimator=estimator,
        metric=metric or "",
        max_iterations=max_iterations,
        balance_classes=balance_classes,
        feature_columns=_columns(feature_columns, "feature_columns"),
        ignore_columns=_columns(ignore_columns, "ignore_columns"),
        experiment_name=experiment or "",
        labels=_convert.string_map(labels),
        timeout_seconds=timeout_seconds,
        permutation_importance=importance,
    )
    for name, value in (hyperparameters or {}).items():
        spec.hyperparameters.values[name].CopyFrom(hyperparameter_value(name, value))
    if validation is not None:
        spec.validation.CopyFrom(validation_strategy(validation))
    if early_stopping is not None and (early := early_stopping_message(early_stopping)) is not None:
        spec.early_stopping.CopyFrom(early)
    if seed is not None:
        spec.seed = seed
    if use_gpu is not None:
        spec.use_gpu = use_gpu
    return trainer_pb2.StartTrainingRequest(spec=spec, request_id=request_id or "")


def list_jobs_request(
    states: Sequence[str] | None, dataset: str | None, estimator: str | None,
    labels: Mapping[str, str] | None, page_size: int,
) -> trainer_pb2.ListJobsRequest:
    if isinstance(states, str):
        states = [states]
    return trainer_pb2.ListJobsRequest(
        page_size=page_size, states=[job_state(s) for s in states or ()], dataset=dataset or "",
        estimator=estimator or "", labels=_convert.string_map(labels))


def events_request(name: str, after: str | None, replay_only: bool,
                   min_log_level: str | None) -> trainer_pb2.StreamJobEventsRequest:
    return trainer_pb2.StreamJobEventsRequest(name=name, after_sequence=after or "", replay_only=replay_only,
                                              min_log_level=log_level(min_log_level))


def with_page_token(request: Message, token: str) -> Message:
    """A copy of a List* request asking for the page `token` names."""
    page = type(request)()
    page.CopyFrom(request)
    page.page_token = token  # type: ignore[attr-defined]
    return page


def spec_of(response: trainer_pb2.GetJobResponse) -> trainer_pb2.TrainingSpec | None:
    return response.training_spec if response.HasField("training_spec") else None


def jobs_of(client: Any, handle: type[_Handle], response: trainer_pb2.ListJobsResponse) -> list[_Handle]:
    """The page's jobs as handles of `client`, each with its spec when it is a training job."""
    specs = response.training_specs
    return [handle(client, job, specs[job.name] if job.name in specs else None) for job in response.jobs]


# --- job handles -------------------------------------------------------------------------------


class _Deadline:
    """What is left of `wait(timeout=...)`, as the deadline of the next event stream."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self._end is None else max(0.0, self._end - time.monotonic())

    def check(self, job: _JobView) -> None:
        """Raises TimeoutError once the time is up (with the job's state as just refreshed)."""
        if self._end is not None and time.monotonic() >= self._end:
            raise TimeoutError(f"{job.name} is still {job.state} after {self.timeout:g} s")


class _JobView:
    """A job's fields, readable: state as "RUNNING", times as UTC datetimes, maps as dicts.

    `spec` is the resolved TrainingSpec message for training jobs (None for other kinds);
    `proto` is the Job message itself.
    """

    name: str
    id: str
    kind: str
    state: str
    progress: float
    error: str
    attempt: int
    max_attempts: int
    worker_id: str
    device: str
    metrics: dict[str, float]
    outputs: list[str]
    mlflow_run_id: str
    labels: dict[str, str]
    create_time: dt.datetime | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    heartbeat_time: dt.datetime | None
    spec: trainer_pb2.TrainingSpec | None
    proto: common_pb2.Job

    def __init__(self, client: Any, message: common_pb2.Job, spec: trainer_pb2.TrainingSpec | None = None) -> None:
        self._client = client
        self.spec = None
        self._update(message, spec)

    def _update(self, message: common_pb2.Job, spec: trainer_pb2.TrainingSpec | None = None) -> None:
        self.proto = message
        self.name = message.name
        self.id = message.job_id
        self.kind = _convert.enum_label(message.kind, common_pb2.JobKind, "JOB_KIND_")
        self.state = job_state_name(message.state)
        self.progress = message.progress
        self.error = message.error
        self.attempt = message.attempt
        self.max_attempts = message.max_attempts
        self.worker_id = message.worker_id
        self.device = message.device
        self.metrics = dict(message.metrics)
        self.outputs = list(message.outputs)
        self.mlflow_run_id = message.mlflow_run_id
        self.labels = dict(message.labels)
        for field in ("create_time", "start_time", "end_time", "heartbeat_time"):
            setattr(self, field, timestamp(message, field))
        if spec is not None:
            self.spec = spec

    def __repr__(self) -> str:
        estimator = f" {self.spec.estimator}" if self.spec is not None else ""
        return f"<{type(self).__name__} {self.name} {self.state} {self.progress:.0%}{estimator}>"

    @property
    def done(self) -> bool:
        """True once the job is SUCCEEDED, FAILED or CANCELLED (as of the last refresh)."""
        return self.state in TERMINAL_STATES

    @property
    def model_name(self) -> str | None:
        """The trained model, `models/{id}`, once the job SUCCEEDED."""
        return next((o for o in self.outputs if o.startswith("models/")), None)

    def to_dict(self) -> dict[str, Any]:
        """The job (and its spec, for training jobs) as the API spells them, JSON-ready."""
        data = {"job": _convert.to_dict(self.proto)}
        if self.spec is not None:
            data["training_spec"] = _convert.to_dict(self.spec)
        return data

    def raise_for_state(self) -> None:
        """Raises JobFailed or JobCancelled if the job ended so; does nothing otherwise."""
        if self.state == "FAILED":
            raise JobFailed(self.name, self.state, self.error, self)
        if self.state == "CANCELLED":
            raise JobCancelled(self.name, self.state, self.error, self)

    def _model_name_or_raise(self) -> str:
        self.raise_for_state()
        if not self.done:
            raise RuntimeError(f"{self.name} is {self.state}: wait() for it to finish first")
        if self.model_name is None:
            raise RuntimeError(f"{self.name} SUCCEEDED but produced no model (outputs: {self.outputs})")
        return self.model_name


class Job(_JobView):
    """A handle on a job, from `Client.train`, `get_job` or `list_jobs`.

    >>> job = ml.train("churn", target="churned", estimator="lightgbm_classifier")
    >>> for event in job.events():
    ...     print(event.kind, event.values or event.message)
    >>> job.wait().metrics                 # raises JobFailed / JobCancelled unless it SUCCEEDED
    >>> model = job.model()
    """

    _client: Client

    def refresh(self) -> Job:
        """Fetches the job again and updates this handle; returns it."""
        self._update(*self._client._fetch_job(self.name))
        return self

    def events(self, after: str | None = None, replay_only: bool = False,
               min_log_level: str | None = None) -> Iterator[JobEvent]:
        """See `Client.job_events`."""
        return self._client.job_events(self.name, after=after, replay_only=replay_only,
                                       min_log_level=min_log_level)

    def wait(self, timeout: float | None = None, raise_on_failure: bool = True) -> Job:
        """Blocks until the job ends (following its event stream, not polling); returns this handle.

        Raises JobFailed/JobCancelled when it did not succeed (unless `raise_on_failure` is
        False), and TimeoutError when `timeout` seconds pass first (the job keeps running).
        """
        deadline = _Deadline(timeout)
        after = None
        while not self.done:
            seen = False
            with contextlib.suppress(DeadlineExceeded):
                for event in self._client.job_events(self.name, after=after, min_log_level="ERROR",
                                                     timeout=deadline.remaining()):
                    after, seen = event.sequence, True
            self.refresh()
            if not self.done:
                deadline.check(self)
                if not seen:
                    time.sleep(_RESUME_DELAY)
        if raise_on_failure:
            self.raise_for_state()
        return self

    def cancel(self, reason: str = "") -> Job:
        """Asks the job to stop (see `Client.cancel_job`); updates and returns this handle."""
        self._update(self._client._cancel_job_message(self.name, reason))
        return self

    def model(self) -> Model:
        """The trained model of a SUCCEEDED job (raises JobFailed/JobCancelled otherwise)."""
        if not self.done:
            self.refresh()
        return self._client.get_model(self._model_name_or_raise())


class AsyncJob(_JobView):
    """The asyncio twin of `Job`: `await job.wait()`, `async for event in job.events()`."""

    _client: AsyncClient

    async def refresh(self) -> AsyncJob:
        """See `Job.refresh`."""
        self._update(*await self._client._fetch_job(self.name))
        return self

    def events(self, after: str | None = None, replay_only: bool = False,
               min_log_level: str | None = None) -> AsyncIterator[JobEvent]:
        """See `Client.job_events`; use with `async for`."""
        return self._client.job_events(self.name, after=after, replay_only=replay_only,
                                       min_log_level=min_log_level)

    async def wait(self, timeout: float | None = None, raise_on_failure: bool = True) -> AsyncJob:
        """See `Job.wait`."""
        deadline = _Deadline(timeout)
        after = None
        while not self.done:
            seen = False
            with contextlib.suppress(DeadlineExceeded):
                async for event in self._client.job_events(self.name, after=after, min_log_level="ERROR",
                                                           timeout=deadline.remaining()):
                    after, seen = event.sequence, True
            await self.refresh()
            if not self.done:
                deadline.check(self)
                if not seen:
                    await asyncio.sleep(_RESUME_DELAY)
        if raise_on_failure:
            self.raise_for_state()
        return self

    async def cancel(self, reason: str = "") -> AsyncJob:
        """See `Job.cancel`."""
        self._update(await self._client._cancel_job_message(self.name, reason))
        return self

    async def model(self) -> Model:
        """See `Job.model`."""
        if not self.done:
            await self.refresh()
        return await self._client.get_model(self._model_name_or_raise())
