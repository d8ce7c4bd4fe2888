"""A pipeline's `PipelineEvent`s (stream `pipelines/{id}` on the pipeline event bus) and the `PipelineStep`
message, shared by the service that answers RPCs and the coordinator that runs the steps."""

from __future__ import annotations

from microlearn.v1 import common_pb2, pipeline_pb2
from microlearn_grpc.services.enums import LOG_LEVELS
from microlearn_grpc.storage.pipelines_repo import StepRecord

EVENT_PREFIX = "microlearn:pipeline-events:"
PIPELINE_STATES = {name: pipeline_pb2.PipelineState.Value(f"PIPELINE_STATE_{name}")
                   for name in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")}
PIPELINE_STATE_NAMES = {v: k for k, v in PIPELINE_STATES.items()}
STEP_STATES = {name: pipeline_pb2.PipelineStepState.Value(f"PIPELINE_STEP_STATE_{name}")
               for name in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")}
STEP_KINDS = {name: pipeline_pb2.PipelineStepKind.Value(f"PIPELINE_STEP_KIND_{name.upper()}")
              for name in ("dataset", "prepare", "select", "optimize", "evaluate", "deploy")}
TERMINAL = frozenset({pipeline_pb2.PIPELINE_STATE_SUCCEEDED, pipeline_pb2.PIPELINE_STATE_FAILED,
                      pipeline_pb2.PIPELINE_STATE_CANCELLED})


def stream(pipeline_id: str) -> str:
    return f"pipelines/{pipeline_id}"


def is_terminal(event: pipeline_pb2.PipelineEvent) -> bool:
    return event.WhichOneof("payload") == "state_change" and event.state_change.state in TERMINAL


def progress(steps: list[StepRecord]) -> float:
    return sum(s.state == "SUCCEEDED" for s in steps) / len(steps) if steps else 0.0


def state_event(pipeline_id: str, state: str, message: str = "", done: float = 0.0) -> pipeline_pb2.PipelineEvent:
    return pipeline_pb2.PipelineEvent(pipeline=stream(pipeline_id), progress=done, state_change=(
        pipeline_pb2.PipelineStateChange(state=PIPELINE_STATES[state], message=message)))


def log_event(pipeline_id: str, level: str, message: str, done: float = 0.0) -> pipeline_pb2.PipelineEvent:
    return pipeline_pb2.PipelineEvent(pipeline=stream(pipeline_id), progress=done, log=common_pb2.LogLine(
        level=LOG_LEVELS.get(level, common_pb2.LOG_LEVEL_INFO), message=message))


def step_event(kind: str, step: StepRecord, done: float = 0.0) -> pipeline_pb2.PipelineEvent:
    """kind: step_started, step_finished or step_failed."""
    event = pipeline_pb2.PipelineEvent(pipeline=stream(step.pipeline_id), progress=done)
    getattr(event, kind).CopyFrom(step_to_proto(step))
    return event


def step_to_proto(step: StepRecord) -> pipeline_pb2.PipelineStep:
    message = pipeline_pb2.PipelineStep(
        index=step.step_index, kind=STEP_KINDS[step.kind], state=STEP_STATES[step.state], error=step.error or "",
        outputs={k: str(v) for k, v in step.outputs.items()}, metrics={k: float(v) for k, v in step.metrics.items()},
        message=step.message, line=step.line)
    if step.started_at:
        message.start_time.FromDatetime(step.started_at)
    if step.ended_at:
        message.end_time.FromDatetime(step.ended_at)
    return message
