"""PipelineService over gRPC: protobuf <-> the records of `services.pipelines`."""

from __future__ import annotations

from microlearn.v1 import pipeline_pb2, pipeline_pb2_grpc
from microlearn_grpc import errors
from microlearn_grpc.core.pipeline_spec import PipelineSpec
from microlearn_grpc.services import pipeline_events
from microlearn_grpc.services.enums import check_log_level
from microlearn_grpc.services.grpc_errors import translate_errors
from microlearn_grpc.services.pipelines import PipelineService
from microlearn_grpc.services.trainer_servicer import timestamp
from microlearn_grpc.storage.pipelines_repo import PipelineRecord


def pipeline_to_proto(pipeline: PipelineRecord, *, with_yaml: bool = True) -> pipeline_pb2.Pipeline:
    return pipeline_pb2.Pipeline(
        name=pipeline.resource_name, id=pipeline.id, display_name=pipeline.display_name,
        state=pipeline_events.PIPELINE_STATES[pipeline.state], error=pipeline.error or "",
        steps=[pipeline_events.step_to_proto(s) for s in pipeline.steps], yaml=pipeline.yaml if with_yaml else "",
        source_name=pipeline.source_name, job=f"jobs/{pipeline.job_id}",
        progress=1.0 if pipeline.state == "SUCCEEDED" else pipeline_events.progress(pipeline.steps),
        labels=pipeline.labels, create_time=timestamp(pipeline.created_at), start_time=timestamp(pipeline.started_at),
        end_time=timestamp(pipeline.ended_at))


def checked_to_proto(spec: PipelineSpec, text: str) -> pipeline_pb2.Pipeline:
    """What `validate_only` answers: the pipeline as it would run, never stored (no name, no state)."""
    return pipeline_pb2.Pipeline(
        display_name=spec.name, yaml=text, source_name=spec.source, labels=spec.labels,
        steps=[pipeline_pb2.PipelineStep(index=s.index, kind=pipeline_events.STEP_KINDS[s.kind], line=s.line,
                                         state=pipeline_pb2.PIPELINE_STEP_STATE_PENDING) for s in spec.steps])


class PipelineServicer(pipeline_pb2_grpc.PipelineServiceServicer):
    def __init__(self, service: PipelineService) -> None:
        self._service = service

    @translate_errors
    async def RunPipeline(self, request, context):
        if not request.yaml.strip():
            raise errors.InvalidArgument("yaml is required: the pipeline's YAML text")
        pipeline, spec = await self._service.run(
            request.yaml, source_name=request.source_name, uploaded=dict(request.uploaded_files),
            validate_only=request.validate_only, request_id=request.request_id)
        message = pipeline_to_proto(pipeline) if pipeline is not None else checked_to_proto(spec, request.yaml)
        return pipeline_pb2.RunPipelineResponse(pipeline=message)

    @translate_errors
    async def GetPipeline(self, request, context):
        return pipeline_pb2.GetPipelineResponse(pipeline=pipeline_to_proto(await self._service.get(request.name)))

    @translate_errors
    async def ListPipelines(self, request, context):
        unknown = [s for s in request.states if s not in pipeline_events.PIPELINE_STATE_NAMES]
        if unknown:
            raise errors.InvalidArgument(f"states: {unknown[0]} is not a known PipelineState")
        pipelines, token, total = await self._service.list(
            page_size=request.page_size, page_token=request.page_token,
            states=[pipeline_events.PIPELINE_STATE_NAMES[s] for s in request.states], labels=dict(request.labels))
        return pipeline_pb2.ListPipelinesResponse(pipelines=[pipeline_to_proto(p, with_yaml=False) for p in pipelines],
                                                  next_page_token=token, total_size=total)

    @translate_errors
    async def StreamPipelineEvents(self, request, context):
        check_log_level(request.min_log_level)
        await self._service.get(request.name)
        async for event in self._service.events(request.name, after=request.after_sequence,
                                                replay_only=request.replay_only):
            if event.WhichOneof("payload") == "log" and event.log.level < request.min_log_level:
                continue
            yield pipeline_pb2.StreamPipelineEventsResponse(event=event)

    @translate_errors
    async def CancelPipeline(self, request, context):
        pipeline = await self._service.cancel(request.name, request.reason)
        return pipeline_pb2.CancelPipelineResponse(pipeline=pipeline_to_proto(pipeline))
