"""REST routes for model selection, training jobs, models, studies and serving: thin HTTP+JSON over the
SelectorService, TrainerService, HPOService and DeployService RPCs. Bodies and answers are the RPCs'
messages in canonical JSON; event streams (`…/events`) are Server-Sent Events, one `data:` line per
event (the event as JSON), replayed from the start (or `after_sequence`) and then live until the job or
study ends. `gateway.app.create_app` includes `ROUTERS`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from google.protobuf import json_format
from google.protobuf.message import Message

from gateway._errors import GatewayError
from gateway.app import Auth, _read_json, backend, finish, render
from microlearn.v1 import (common_pb2, deploy_pb2, deploy_pb2_grpc, hpo_pb2, hpo_pb2_grpc, selector_pb2,
                           selector_pb2_grpc, trainer_pb2, trainer_pb2_grpc)

__all__ = ["ROUTERS"]

selection = APIRouter(prefix="/v1", tags=["selection"])
jobs = APIRouter(prefix="/v1/jobs", tags=["jobs"])
models = APIRouter(prefix="/v1/models", tags=["models"])
studies = APIRouter(prefix="/v1/studies", tags=["studies"])
serving = APIRouter(prefix="/v1", tags=["serving"])
ROUTERS = (selection, jobs, models, studies, serving)
_SELECTOR, _TRAINER = selector_pb2_grpc.SelectorServiceStub, trainer_pb2_grpc.TrainerServiceStub
_HPO, _DEPLOY = hpo_pb2_grpc.HPOServiceStub, deploy_pb2_grpc.DeployServiceStub

PageSize = Annotated[int, Query(description="Results per page (1-1000; 0 means 50).")]
PageToken = Annotated[str, Query(description="`next_page_token` of the previous page.")]
After = Annotated[str, Query(description="Resume after this event `sequence` (empty: from the start).")]
ReplayOnly = Annotated[bool, Query(description="Stop after the recorded history instead of following live.")]


async def _unary(request: Request, auth: Any, stub_type: type, method: str, message: Message) -> JSONResponse:
    stub = stub_type(backend(request).channel)
    return render(await finish(request, getattr(stub, method)(message, metadata=auth)))


async def _body(request: Request, message: Message) -> Message:
    return await _read_json(request, message)


async def _sse(request: Request, auth: Any, stub_type: type, method: str, message: Message) -> StreamingResponse:
    """The first event is read before answering, so a bad request is an HTTP error, not a broken stream."""
    call = getattr(stub_type(backend(request).channel), method)(message, metadata=auth)
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise

    async def events() -> AsyncIterator[bytes]:
        response = first
        try:
            while response is not grpc.aio.EOF:
                event = json_format.MessageToDict(response.event, preserving_proto_field_name=True)
                yield f"id: {response.event.sequence}\ndata: {json.dumps(event)}\n\n".encode()
                if await request.is_disconnected():
                    return
                response = await call.read()
        finally:
            call.cancel()
    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# -- selection ----------------------------------------------------------------------------------

@selection.post("/select-models", summary="Detect the task and rank candidate estimators",
                description="SelectorService.SelectModels; body: SelectModelsRequest.")
async def select_models(request: Request, auth: Auth) -> JSONResponse:
    message = await _body(request, selector_pb2.SelectModelsRequest())
    return await _unary(request, auth, _SELECTOR, "SelectModels", message)


@selection.get("/estimators", summary="List the estimators of the registry")
async def list_estimators(request: Request, auth: Auth, page_size: PageSize = 0,
                          page_token: PageToken = "",
                          task: Annotated[str, Query(description="Only this TaskType, e.g. "
                                                                 "TASK_TYPE_REGRESSION.")] = "") -> JSONResponse:
    message = selector_pb2.ListEstimatorsRequest(page_size=page_size, page_token=page_token)
    if task:
        message.task = _enum(common_pb2.TaskType, task, "task")
    return await _unary(request, auth, _SELECTOR, "ListEstimators", message)


@selection.get("/estimators/{estimator_id}", summary="Get one estimator")
async def get_estimator(request: Request, auth: Auth, estimator_id: str) -> JSONResponse:
    return await _unary(request, auth, _SELECTOR, "GetEstimator",
                        selector_pb2.GetEstimatorRequest(name=estimator_id))


# -- jobs ---------------------------------------------------------------------------------------

@jobs.post("", summary="Start a training job", description="TrainerService.StartTraining; body: "
                                                           "StartTrainingRequest (`spec`, `request_id`).")
async def start_training(request: Request, auth: Auth) -> JSONResponse:
    message = await _body(request, trainer_pb2.StartTrainingRequest())
    return await _unary(request, auth, _TRAINER, "StartTraining", message)


@jobs.get("", summary="List jobs, newest first")
async def list_jobs(request: Request, auth: Auth, page_size: PageSize = 0, page_token: PageToken = "",
                    state: Annotated[list[str] | None, Query(description="JobState names, repeatable.")] = None,
                    dataset: str = "", estimator: str = "", study: str = "") -> JSONResponse:
    message = trainer_pb2.ListJobsRequest(page_size=page_size, page_token=page_token, dataset=dataset,
                                          estimator=estimator, study=study)
    message.states.extend(_enum(common_pb2.JobState, s, "state") for s in state or [])
    return await _unary(request, auth, _TRAINER, "ListJobs", message)


@jobs.get("/{job_id}", summary="Get a job")
async def get_job(request: Request, auth: Auth, job_id: str) -> JSONResponse:
    return await _unary(request, auth, _TRAINER, "GetJob",
                        trainer_pb2.GetJobRequest(name=job_id))


@jobs.post("/{job_id}/cancel", summary="Cancel a job (body: optional {\"reason\": ...})")
async def cancel_job(request: Request, auth: Auth, job_id: str) -> JSONResponse:
    message = await _body(request, trainer_pb2.CancelJobRequest())
    message.name = job_id
    return await _unary(request, auth, _TRAINER, "CancelJob", message)


@jobs.get("/{job_id}/events", summary="A job's events as Server-Sent Events")
async def job_events(request: Request, auth: Auth, job_id: str, after_sequence: After = "",
                     replay_only: ReplayOnly = False) -> StreamingResponse:
    return await _sse(request, auth, _TRAINER, "StreamJobEvents",
                      trainer_pb2.StreamJobEventsRequest(name=job_id, after_sequence=after_sequence,
                                                         replay_only=replay_only))


# -- models -------------------------------------------------------------------------------------

@models.get("", summary="List trained models, newest first")
async def list_models(request: Request, auth: Auth, page_size: PageSize = 0, page_token: PageToken = "",
                      dataset: str = "", estimator: str = "", study: str = "") -> JSONResponse:
    return await _unary(request, auth, _TRAINER, "ListModels",
                        trainer_pb2.ListModelsRequest(page_size=page_size, page_token=page_token,
                                                      dataset=dataset, estimator=estimator, study=study))


@models.post("/compare", summary="Compare models side by side", description="TrainerService.CompareModels; "
                                                                            "body: CompareModelsRequest.")
async def compare_models(request: Request, auth: Auth) -> JSONResponse:
    message = await _body(request, trainer_pb2.CompareModelsRequest())
    return await _unary(request, auth, _TRAINER, "CompareModels", message)


@models.get("/{model_id}", summary="Get a trained model")
async def get_model(request: Request, auth: Auth, model_id: str) -> JSONResponse:
    return await _unary(request, auth, _TRAINER, "GetModel",
                        trainer_pb2.GetModelRequest(name=model_id))


@models.delete("/{model_id}", summary="Delete a trained model and its artifact")
async def delete_model(request: Request, auth: Auth, model_id: str) -> JSONResponse:
    return await _unary(request, auth, _TRAINER, "DeleteModel",
                        trainer_pb2.DeleteModelRequest(name=model_id))


# -- studies ------------------------------------------------------------------------------------

@studies.post("", summary="Start a hyperparameter study", description="HPOService.StartStudy; body: "
                                                                     "StartStudyRequest (`spec`, `request_id`).")
async def start_study(request: Request, auth: Auth) -> JSONResponse:
    message = await _body(request, hpo_pb2.StartStudyRequest())
    return await _unary(request, auth, _HPO, "StartStudy", message)


@studies.get("", summary="List studies, newest first")
async def list_studies(request: Request, auth: Auth, page_size: PageSize = 0, page_token: PageToken = "",
                       dataset: str = "") -> JSONResponse:
    return await _unary(request, auth, _HPO, "ListStudies",
                        hpo_pb2.ListStudiesRequest(page_size=page_size, page_token=page_token, dataset=dataset))


@studies.get("/{study_id}", summary="Get a study with its leaderboard")
async def get_study(request: Request, auth: Auth, study_id: str,
                    leaderboard_size: Annotated[int, Query(description="Rows (0 means 50).")] = 0) -> JSONResponse:
    return await _unary(request, auth, _HPO, "GetStudy",
                        hpo_pb2.GetStudyRequest(name=study_id, leaderboard_size=leaderboard_size))


@studies.get("/{study_id}/trials", summary="List a study's trials")
async def list_trials(request: Request, auth: Auth, study_id: str, page_size: PageSize = 0,
                      page_token: PageToken = "", order_by: str = "") -> JSONResponse:
    return await _unary(request, auth, _HPO, "ListTrials",
                        hpo_pb2.ListTrialsRequest(study=study_id, page_size=page_size, page_token=page_token,
                                                  order_by=order_by))


@studies.get("/{study_id}/best-trial", summary="The best completed trial so far")
async def best_trial(request: Request, auth: Auth, study_id: str) -> JSONResponse:
    return await _unary(request, auth, _HPO, "GetBestTrial",
                        hpo_pb2.GetBestTrialRequest(name=study_id))


@studies.post("/{study_id}/stop", summary="Stop a study early (body: optional StopStudyRequest fields)")
async def stop_study(request: Request, auth: Auth, study_id: str) -> JSONResponse:
    message = await _body(request, hpo_pb2.StopStudyRequest())
    message.name = study_id
    return await _unary(request, auth, _HPO, "StopStudy", message)


@studies.get("/{study_id}/events", summary="A study's events as Server-Sent Events")
async def study_events(request: Request, auth: Auth, study_id: str, after_sequence: After = "",
                       replay_only: ReplayOnly = False) -> StreamingResponse:
    return await _sse(request, auth, _HPO, "StreamStudyEvents",
                      hpo_pb2.StreamStudyEventsRequest(name=study_id, after_sequence=after_sequence,
                                                       replay_only=replay_only))


@serving.post("/registered-models/{registered_model}/versions", summary="Register a trained model as a version",
              description="DeployService.RegisterModelVersion; body: RegisterModelVersionRequest (`model`, "
                          "`aliases`, ...).")
async def register_version(request: Request, auth: Auth, registered_model: str) -> JSONResponse:
    message = await _body(request, deploy_pb2.RegisterModelVersionRequest())
    message.registered_model = registered_model
    return await _unary(request, auth, _DEPLOY, "RegisterModelVersion", message)


@serving.post("/aliases", summary="Point an alias at a version (promote)", description="DeployService.SetAlias; "
                                                                                      "body: SetAliasRequest.")
async def set_alias(request: Request, auth: Auth) -> JSONResponse:
    return await _unary(request, auth, _DEPLOY, "SetAlias", await _body(request, deploy_pb2.SetAliasRequest()))


@serving.post("/aliases/rollback", summary="Move an alias back to its previous version",
              description="DeployService.RollbackAlias; body: RollbackAliasRequest.")
async def rollback_alias(request: Request, auth: Auth) -> JSONResponse:
    return await _unary(request, auth, _DEPLOY, "RollbackAlias",
                        await _body(request, deploy_pb2.RollbackAliasRequest()))


@serving.post("/deployments", summary="Create a deployment", description="DeployService.CreateDeployment; body: "
                                                                        "CreateDeploymentRequest.")
async def create_deployment(request: Request, auth: Auth) -> JSONResponse:
    return await _unary(request, auth, _DEPLOY, "CreateDeployment",
                        await _body(request, deploy_pb2.CreateDeploymentRequest()))


@serving.get("/deployments", summary="List deployments")
async def list_deployments(request: Request, auth: Auth, page_size: PageSize = 0,
                           page_token: PageToken = "", registered_model: str = "") -> JSONResponse:
    return await _unary(request, auth, _DEPLOY, "ListDeployments", deploy_pb2.ListDeploymentsRequest(
        page_size=page_size, page_token=page_token, registered_model=registered_model))


@serving.get("/deployments/{deployment}", summary="Get a deployment")
async def get_deployment(request: Request, auth: Auth, deployment: str) -> JSONResponse:
    return await _unary(request, auth, _DEPLOY, "GetDeployment", deploy_pb2.GetDeploymentRequest(name=deployment))


@serving.delete("/deployments/{deployment}", summary="Delete a deployment")
async def delete_deployment(request: Request, auth: Auth, deployment: str) -> JSONResponse:
    return await _unary(request, auth, _DEPLOY, "DeleteDeployment",
                        deploy_pb2.DeleteDeploymentRequest(name=deployment))


@serving.post("/deployments/{deployment}/predict", summary="Predict with a deployment",
              description="DeployService.Predict; body: PredictRequest without `deployment` (rows as typed "
                          "columns, or `arrow_ipc` as base64).")
async def predict(request: Request, auth: Auth, deployment: str) -> JSONResponse:
    # Requests for this route are answered by gateway._fast_predict.FastPredict before routing (same
    # contract, without FastAPI's per-request overhead); this handler is what OpenAPI documents.
    message = await _body(request, deploy_pb2.PredictRequest())
    message.deployment = deployment
    return await _unary(request, auth, _DEPLOY, "Predict", message)


@serving.post("/deployments/{deployment}/batch-predictions", summary="Predict over a stored dataset (a job)",
              description="DeployService.StartBatchPrediction; body: StartBatchPredictionRequest.")
async def batch_predict(request: Request, auth: Auth, deployment: str) -> JSONResponse:
    message = await _body(request, deploy_pb2.StartBatchPredictionRequest())
    message.deployment = deployment
    return await _unary(request, auth, _DEPLOY, "StartBatchPrediction", message)


@serving.post("/deployments/{deployment}/feedback", summary="Attach ground truth to logged predictions",
              description="DeployService.SubmitFeedback; body: SubmitFeedbackRequest.")
async def feedback(request: Request, auth: Auth, deployment: str) -> JSONResponse:
    message = await _body(request, deploy_pb2.SubmitFeedbackRequest())
    message.deployment = deployment
    return await _unary(request, auth, _DEPLOY, "SubmitFeedback", message)


def _enum(enum: Any, name: str, field: str) -> int:
    try:
        return enum.Value(name)
    except ValueError:
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"{field}: {name!r} is not one of {', '.join(enum.keys()[1:])}") from None
