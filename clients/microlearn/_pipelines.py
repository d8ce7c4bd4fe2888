"""YAML pipelines in the SDK: a mixin `Client` (and `AsyncClient`) inherits.

`run_pipeline("pipeline.yaml")` checks the YAML here first (syntax, fields, step order: the same parser the
server runs, so errors name the line and field before anything is uploaded), uploads the local files its
`path` fields name (relative to the YAML's folder), and starts the pipeline with RunPipeline, which tells the
server which dataset each path became. Methods return the API's messages (`Pipeline`, `PipelineEvent`),
documented in `protos/microlearn/v1/pipeline.proto`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microlearn._polling import await_terminal, wait_until_terminal
from microlearn.v1 import pipeline_pb2, pipeline_pb2_grpc

__all__ = ["AsyncPipelineMixin", "PipelineMixin", "PipelineSource", "is_terminal", "state_name"]

_TERMINAL = (pipeline_pb2.PIPELINE_STATE_SUCCEEDED, pipeline_pb2.PIPELINE_STATE_FAILED,
             pipeline_pb2.PIPELINE_STATE_CANCELLED)


def is_terminal(pipeline: pipeline_pb2.Pipeline) -> bool:
    return pipeline.state in _TERMINAL


def state_name(pipeline: pipeline_pb2.Pipeline) -> str:
    return pipeline_pb2.PipelineState.Name(pipeline.state).removeprefix("PIPELINE_STATE_")


@dataclass(frozen=True)
class PipelineSource:
    """A pipeline's YAML, checked locally, with the local files it names: (path as written, file, upload name)."""

    text: str
    source_name: str
    uploads: list[tuple[str, Path, str | None]]

    @classmethod
    def load(cls, source: str | os.PathLike[str], *, source_name: str | None = None) -> PipelineSource:
        """`source` is a YAML file, or YAML text (then relative paths are relative to the working directory).
        Raises `InvalidArgument` (from `microlearn_grpc`'s parser) with the line and field at fault."""
        import grpc

        from microlearn._errors import InvalidArgument
        from microlearn_grpc.core.pipeline_spec import PipelineSpecError, local_paths, parse_pipeline

        def invalid(message: str) -> InvalidArgument:
            return InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, message)

        is_file = isinstance(source, os.PathLike) or ("\n" not in str(source) and Path(str(source)).is_file())
        if is_file:
            path = Path(source)
            text, base, name = path.read_text(encoding="utf-8"), path.parent, source_name or path.name
        else:
            text, base, name = str(source), Path.cwd(), source_name or "pipeline.yaml"
        try:
            spec = parse_pipeline(text, name)
        except PipelineSpecError as exc:
            raise invalid(str(exc)) from None
        uploads = []
        for step, written in local_paths(spec):
            file = (base / Path(written).expanduser()).resolve()
            if not file.is_file():
                raise invalid(str(spec.error(f"{step.field}.path", f"no such file: {file}")))
            uploads.append((written, file, step.params.get("name")))
        return cls(text, name, uploads)


def _request(source: PipelineSource, uploaded: Mapping[str, str], validate_only: bool,
             request_id: str) -> pipeline_pb2.RunPipelineRequest:
    return pipeline_pb2.RunPipelineRequest(yaml=source.text, source_name=source.source_name,
                                           uploaded_files=dict(uploaded), validate_only=validate_only,
                                           request_id=request_id)


def _list_request(states: Sequence[int], labels: Mapping[str, str] | None, page_size: int):
    return lambda token: pipeline_pb2.ListPipelinesRequest(states=list(states), labels=dict(labels or {}),
                                                           page_size=page_size, page_token=token)


class PipelineMixin:
    """PipelineService for `Client` (which supplies `_channel`, `_call`, `_paginate` and `upload_dataset`)."""

    _channel: Any

    @property
    def _pipelines(self) -> pipeline_pb2_grpc.PipelineServiceStub:
        stub = self.__dict__.get("_pipeline_stub")
        if stub is None:
            stub = self.__dict__["_pipeline_stub"] = pipeline_pb2_grpc.PipelineServiceStub(self._channel)
        return stub

    def run_pipeline(self, source: str | os.PathLike[str], *, source_name: str | None = None,
                     validate_only: bool = False, request_id: str = "",
                     progress: bool = False) -> pipeline_pb2.Pipeline:
        """Check a pipeline (a YAML file or text), upload the local files it names and start it; returns the
        Pipeline at once (PENDING). With `validate_only` the server checks it too (the files are uploaded,
        since the checks read them) and nothing runs."""
        plan = PipelineSource.load(source, source_name=source_name)
        uploaded = {written: self.upload_dataset(file, name=name, progress=progress).dataset.name  # type: ignore[attr-defined]
                    for written, file, name in plan.uploads}
        request = _request(plan, uploaded, validate_only, request_id)
        return self._call(self._pipelines.RunPipeline, request).pipeline  # type: ignore[attr-defined]

    def get_pipeline(self, name: str) -> pipeline_pb2.Pipeline:
        """One pipeline with each step's state and outputs."""
        request = pipeline_pb2.GetPipelineRequest(name=name)
        return self._call(self._pipelines.GetPipeline, request).pipeline  # type: ignore[attr-defined]

    def list_pipelines(self, *, states: Sequence[int] = (), labels: Mapping[str, str] | None = None,
                       page_size: int = 0) -> Iterator[pipeline_pb2.Pipeline]:
        """Every pipeline, newest first (without their YAML), fetched page by page."""
        return self._paginate(self._pipelines.ListPipelines,  # type: ignore[attr-defined]
                              _list_request(states, labels, page_size), lambda response: response.pipelines)

    def cancel_pipeline(self, name: str, reason: str = "") -> pipeline_pb2.Pipeline:
        """Stops the running step (and its study) and ends the pipeline CANCELLED."""
        request = pipeline_pb2.CancelPipelineRequest(name=name, reason=reason)
        return self._call(self._pipelines.CancelPipeline, request).pipeline  # type: ignore[attr-defined]

    def pipeline_events(self, name: str, *, after: str = "",
                        replay_only: bool = False) -> Iterator[pipeline_pb2.PipelineEvent]:
        """The pipeline's events from the start (or after `after`), then live until it ends."""
        from microlearn._errors import translate_rpc_errors

        request = pipeline_pb2.StreamPipelineEventsRequest(name=name, after_sequence=after, replay_only=replay_only)
        with translate_rpc_errors():
            for response in self._pipelines.StreamPipelineEvents(request,
                                                                 metadata=self._metadata):  # type: ignore[attr-defined]
                yield response.event

    def wait_pipeline(self, name: str, timeout: float | None = None, poll: float = 0.5) -> pipeline_pb2.Pipeline:
        """Blocks until the pipeline ends; returns it. TimeoutError after `timeout` s."""
        return wait_until_terminal(lambda: self.get_pipeline(name), is_terminal, state_name, name, timeout, poll)


class AsyncPipelineMixin:
    """The same for `AsyncClient` (coroutines; events and listings as async iterators)."""

    _channel: Any

    @property
    def _pipelines(self) -> pipeline_pb2_grpc.PipelineServiceStub:
        self._stub  # type: ignore[attr-defined]  # opens the channel on first use
        return pipeline_pb2_grpc.PipelineServiceStub(self._channel)

    async def run_pipeline(self, source: str | os.PathLike[str], *, source_name: str | None = None,
                           validate_only: bool = False, request_id: str = "") -> pipeline_pb2.Pipeline:
        """See `Client.run_pipeline`."""
        plan = PipelineSource.load(source, source_name=source_name)
        uploaded = {}
        for written, file, name in plan.uploads:
            uploaded[written] = (await self.upload_dataset(file, name=name)).dataset.name  # type: ignore[attr-defined]
        request = _request(plan, uploaded, validate_only, request_id)
        return (await self._call(self._pipelines.RunPipeline, request)).pipeline  # type: ignore[attr-defined]

    async def get_pipeline(self, name: str) -> pipeline_pb2.Pipeline:
        """See `Client.get_pipeline`."""
        request = pipeline_pb2.GetPipelineRequest(name=name)
        return (await self._call(self._pipelines.GetPipeline, request)).pipeline  # type: ignore[attr-defined]

    async def list_pipelines(self, *, states: Sequence[int] = (), labels: Mapping[str, str] | None = None,
                             page_size: int = 0) -> AsyncIterator[pipeline_pb2.Pipeline]:
        """See `Client.list_pipelines`."""
        async for pipeline in self._paginate(self._pipelines.ListPipelines,  # type: ignore[attr-defined]
                                             _list_request(states, labels, page_size),
                                             lambda response: response.pipelines):
            yield pipeline

    async def cancel_pipeline(self, name: str, reason: str = "") -> pipeline_pb2.Pipeline:
        """See `Client.cancel_pipeline`."""
        request = pipeline_pb2.CancelPipelineRequest(name=name, reason=reason)
        return (await self._call(self._pipelines.CancelPipeline, request)).pipeline  # type: ignore[attr-defined]

    async def pipeline_events(self, name: str, *, after: str = "",
                              replay_only: bool = False) -> AsyncIterator[pipeline_pb2.PipelineEvent]:
        """See `Client.pipeline_events`."""
        from microlearn._errors import translate_rpc_errors

        request = pipeline_pb2.StreamPipelineEventsRequest(name=name, after_sequence=after, replay_only=replay_only)
        with translate_rpc_errors():
            async for response in self._pipelines.StreamPipelineEvents(  # type: ignore[attr-defined]
                    request, metadata=self._metadata):  # type: ignore[attr-defined]
                yield response.event

    async def wait_pipeline(self, name: str, timeout: float | None = None,
                            poll: float = 0.5) -> pipeline_pb2.Pipeline:
        """See `Client.wait_pipeline`."""
        return await await_terminal(lambda: self.get_pipeline(name), is_terminal, state_name, name, timeout, poll)
