"""Model selection and hyperparameter studies in the SDK: a mixin `Client` inherits.

Methods return the API's messages (`SelectModelsResponse`, `Study`, `Trial`, `StudyEvent`); their
fields are documented in `protos/microlearn/v1/selector.proto` and `hpo.proto`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from microlearn.v1 import common_pb2, hpo_pb2, hpo_pb2_grpc, selector_pb2

_TERMINAL = (hpo_pb2.STUDY_STATE_SUCCEEDED, hpo_pb2.STUDY_STATE_FAILED, hpo_pb2.STUDY_STATE_CANCELLED)
_TASKS = {"binary": common_pb2.TASK_TYPE_BINARY_CLASSIFICATION,
          "multiclass": common_pb2.TASK_TYPE_MULTICLASS_CLASSIFICATION,
          "regression": common_pb2.TASK_TYPE_REGRESSION, "clustering": common_pb2.TASK_TYPE_CLUSTERING}


def is_terminal(study: hpo_pb2.Study) -> bool:
    return study.state in _TERMINAL


def state_name(study: hpo_pb2.Study) -> str:
    return hpo_pb2.StudyState.Name(study.state).removeprefix("STUDY_STATE_")


def _select_request(dataset: str, target: str | None, task: str | None, max_candidates: int,
                    time_budget: int) -> selector_pb2.SelectModelsRequest:
    return selector_pb2.SelectModelsRequest(dataset=dataset, target=target or "", task=_TASKS[task] if task else 0,
                                            max_candidates=max_candidates, time_budget_seconds=time_budget)


def _start_request(dataset: str, target: str | None, time_budget: int, max_trials: int, candidates: Sequence[str],
                   max_candidates: int, metric: str | None, task: str | None, parallelism: int, seed: int | None,
                   labels: Mapping[str, str] | None, request_id: str,
                   spec_fields: Mapping[str, Any]) -> hpo_pb2.StartStudyRequest:
    spec = hpo_pb2.StudySpec(
        dataset=dataset, target=target or "", task=_TASKS[task] if task else 0, candidates=list(candidates),
        max_candidates=max_candidates, metric=metric or "", parallelism=parallelism, labels=dict(labels or {}),
        budget=hpo_pb2.StudyBudget(time_budget_seconds=time_budget, max_trials=max_trials), **spec_fields)
    if seed is not None:
        spec.seed = seed
    return hpo_pb2.StartStudyRequest(spec=spec, request_id=request_id)


class StudyMixin:
    """SelectModels and HPOService for `Client` (which supplies `_channel`, `_call` and `_paginate`)."""

    _channel: Any

    @property
    def _hpo(self) -> hpo_pb2_grpc.HPOServiceStub:
        stub = self.__dict__.get("_hpo_stub")
        if stub is None:
            stub = self.__dict__["_hpo_stub"] = hpo_pb2_grpc.HPOServiceStub(self._channel)
        return stub

    def select_models(self, dataset: str, target: str | None = None, *, task: str | None = None,
                      max_candidates: int = 0, time_budget: int = 0) -> selector_pb2.SelectModelsResponse:
        """The detected task (with why), recommended metric and validation, and ranked candidate estimators."""
        request = _select_request(dataset, target, task, max_candidates, time_budget)
        return self._call(self._selector.SelectModels, request)  # type: ignore[attr-defined]

    def start_study(self, dataset: str, target: str | None = None, *, time_budget: int = 0, max_trials: int = 0,
                    candidates: Sequence[str] = (), max_candidates: int = 0, metric: str | None = None,
                    task: str | None = None, parallelism: int = 0, seed: int | None = None,
                    labels: Mapping[str, str] | None = None, request_id: str = "",
                    **spec_fields: Any) -> hpo_pb2.Study:
        """Starts a search (returns the Study at once, PENDING). `time_budget` is wall-clock seconds;
        with neither it nor `max_trials` the server's default budget applies. Empty `candidates`
        lets the server pick (SelectModels). Other `StudySpec` fields pass as keywords."""
        request = _start_request(dataset, target, time_budget, max_trials, candidates, max_candidates, metric, task,
                                 parallelism, seed, labels, request_id, spec_fields)
        return self._call(self._hpo.StartStudy, request).study  # type: ignore[attr-defined]

    def get_study(self, name: str, leaderboard_size: int = 0) -> hpo_pb2.Study:
        """One study with its leaderboard (the top `leaderboard_size` trials; 0 means 50)."""
        return self._call(self._hpo.GetStudy,  # type: ignore[attr-defined]
                          hpo_pb2.GetStudyRequest(name=name, leaderboard_size=leaderboard_size)).study

    def list_studies(self, *, dataset: str = "", page_size: int = 0) -> Iterator[hpo_pb2.Study]:
        """Every study, newest first (leaderboards omitted), fetched page by page."""
        return self._paginate(self._hpo.ListStudies,  # type: ignore[attr-defined]
                              lambda token: hpo_pb2.ListStudiesRequest(dataset=dataset, page_size=page_size,
                                                                       page_token=token),
                              lambda response: response.studies)

    def stop_study(self, name: str, *, cancel_running: bool = False, reason: str = "") -> hpo_pb2.Study:
        """Stops a study early: no new trials; running ones finish unless `cancel_running`."""
        request = hpo_pb2.StopStudyRequest(name=name, cancel_running_trials=cancel_running, reason=reason)
        return self._call(self._hpo.StopStudy, request).study  # type: ignore[attr-defined]

    def best_trial(self, name: str) -> hpo_pb2.Trial:
        """The best completed trial so far (FailedPrecondition while none has completed)."""
        return self._call(self._hpo.GetBestTrial,  # type: ignore[attr-defined]
                          hpo_pb2.GetBestTrialRequest(name=name)).trial

    def study_events(self, name: str, *, after: str = "", replay_only: bool = False,
                     exclude_trial_reports: bool = False) -> Iterator[hpo_pb2.StudyEvent]:
        """The study's events from the start (or after `after`), then live until it ends."""
        from microlearn._errors import translate_rpc_errors

        request = hpo_pb2.StreamStudyEventsRequest(name=name, after_sequence=after, replay_only=replay_only,
                                                   exclude_trial_reports=exclude_trial_reports)
        with translate_rpc_errors():
            for response in self._hpo.StreamStudyEvents(request, metadata=self._metadata):  # type: ignore[attr-defined]
                yield response.event

    def wait_study(self, name: str, timeout: float | None = None, poll: float = 0.5) -> hpo_pb2.Study:
        """Blocks until the study ends; returns it with its leaderboard. TimeoutError after `timeout` s."""
        from microlearn._polling import wait_until_terminal

        return wait_until_terminal(lambda: self.get_study(name), is_terminal, state_name, name, timeout, poll)


class AsyncStudyMixin:
    """The same for `AsyncClient` (coroutines; events and listings as async iterators)."""

    _channel: Any

    @property
    def _hpo(self) -> hpo_pb2_grpc.HPOServiceStub:
        self._stub  # type: ignore[attr-defined]  # opens the channel on first use
        return hpo_pb2_grpc.HPOServiceStub(self._channel)

    async def select_models(self, dataset: str, target: str | None = None, *, task: str | None = None,
                            max_candidates: int = 0, time_budget: int = 0) -> selector_pb2.SelectModelsResponse:
        """See `Client.select_models`."""
        request = _select_request(dataset, target, task, max_candidates, time_budget)
        return await self._call(self._selector.SelectModels, request)  # type: ignore[attr-defined]

    async def start_study(self, dataset: str, target: str | None = None, *, time_budget: int = 0,
                          max_trials: int = 0, candidates: Sequence[str] = (), max_candidates: int = 0,
                          metric: str | None = None, task: str | None = None, parallelism: int = 0,
                          seed: int | None = None, labels: Mapping[str, str] | None = None, request_id: str = "",
                          **spec_fields: Any) -> hpo_pb2.Study:
        """See `Client.start_study`."""
        request = _start_request(dataset, target, time_budget, max_trials, candidates, max_candidates, metric, task,
                                 parallelism, seed, labels, request_id, spec_fields)
        return (await self._call(self._hpo.StartStudy, request)).study  # type: ignore[attr-defined]

    async def get_study(self, name: str, leaderboard_size: int = 0) -> hpo_pb2.Study:
        """See `Client.get_study`."""
        request = hpo_pb2.GetStudyRequest(name=name, leaderboard_size=leaderboard_size)
        return (await self._call(self._hpo.GetStudy, request)).study  # type: ignore[attr-defined]

    async def stop_study(self, name: str, *, cancel_running: bool = False, reason: str = "") -> hpo_pb2.Study:
        """See `Client.stop_study`."""
        request = hpo_pb2.StopStudyRequest(name=name, cancel_running_trials=cancel_running, reason=reason)
        return (await self._call(self._hpo.StopStudy, request)).study  # type: ignore[attr-defined]

    async def best_trial(self, name: str) -> hpo_pb2.Trial:
        """See `Client.best_trial`."""
        request = hpo_pb2.GetBestTrialRequest(name=name)
        return (await self._call(self._hpo.GetBestTrial, request)).trial  # type: ignore[attr-defined]

    async def study_events(self, name: str, *, after: str = "", replay_only: bool = False,
                           exclude_trial_reports: bool = False) -> AsyncIterator[hpo_pb2.StudyEvent]:
        """See `Client.study_events`."""
        from microlearn._errors import translate_rpc_errors

        request = hpo_pb2.StreamStudyEventsRequest(name=name, after_sequence=after, replay_only=replay_only,
                                                   exclude_trial_reports=exclude_trial_reports)
        with translate_rpc_errors():
            async for response in self._hpo.StreamStudyEvents(request,  # type: ignore[attr-defined]
                                                              metadata=self._metadata):  # type: ignore[attr-defined]
                yield response.event

    async def wait_study(self, name: str, timeout: float | None = None, poll: float = 0.5) -> hpo_pb2.Study:
        """See `Client.wait_study`."""
        from microlearn._polling import await_terminal

        return await await_terminal(lambda: self.get_study(name), is_terminal, state_name, name, timeout, poll)
