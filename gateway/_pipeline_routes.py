"""REST routes for YAML pipelines: thin HTTP+JSON over PipelineService. The body of `POST /v1/pipelines` is a
RunPipelineRequest (`yaml`, `source_name`, `uploaded_files`, `validate_only`, `request_id`): upload local files
first (`POST /v1/datasets`) and map each `path` to its dataset in `uploaded_files`. Events are Server-Sent Events.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gateway._ml_routes import After, PageSize, PageToken, ReplayOnly, _body, _sse, _unary
from gateway.app import Auth
from microlearn.v1 import pipeline_pb2, pipeline_pb2_grpc

__all__ = ["pipelines"]

pipelines = APIRouter(prefix="/v1/pipelines", tags=["pipelines"])
_PIPELINES = pipeline_pb2_grpc.PipelineServiceStub


@pipelines.post("", summary="Validate and start a YAML pipeline",
                description="PipelineService.RunPipeline; body: RunPipelineRequest. Invalid YAML is a 400 naming "
                            "the line and field.")
async def run_pipeline(request: Request, auth: Auth) -> JSONResponse:
    return await _unary(request, auth, _PIPELINES, "RunPipeline",
                        await _body(request, pipeline_pb2.RunPipelineRequest()))


@pipelines.get("", summary="List pipelines, newest first")
async def list_pipelines(request: Request, auth: Auth, page_size: PageSize = 0,
                         page_token: PageToken = "") -> JSONResponse:
    return await _unary(request, auth, _PIPELINES, "ListPipelines",
                        pipeline_pb2.ListPipelinesRequest(page_size=page_size, page_token=page_token))


@pipelines.get("/{pipeline_id}", summary="Get a pipeline with each step's state and outputs")
async def get_pipeline(request: Request, auth: Auth, pipeline_id: str) -> JSONResponse:
    return await _unary(request, auth, _PIPELINES, "GetPipeline", pipeline_pb2.GetPipelineRequest(name=pipeline_id))


@pipelines.post("/{pipeline_id}/cancel", summary="Cancel a pipeline (body: optional CancelPipelineRequest fields)")
async def cancel_pipeline(request: Request, auth: Auth, pipeline_id: str) -> JSONResponse:
    message = await _body(request, pipeline_pb2.CancelPipelineRequest())
    message.name = pipeline_id
    return await _unary(request, auth, _PIPELINES, "CancelPipeline", message)


@pipelines.get("/{pipeline_id}/events", summary="A pipeline's events as Server-Sent Events")
async def pipeline_events(request: Request, auth: Auth, pipeline_id: str, after_sequence: After = "",
                          replay_only: ReplayOnly = False) -> StreamingResponse:
    return await _sse(request, auth, _PIPELINES, "StreamPipelineEvents",
                      pipeline_pb2.StreamPipelineEventsRequest(name=pipeline_id, after_sequence=after_sequence,
                                                               replay_only=replay_only))
