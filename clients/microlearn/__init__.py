"""MicroLearn Python SDK: sync and async clients over the generated gRPC stubs, with typed errors.

    import microlearn

    with microlearn.Client() as ml:           # $MICROLEARN_ADDRESS / $MICROLEARN_TOKEN
        ds = ml.upload_dataset("iris.csv").dataset
        print(ml.sample_dataset(ds.name, 5))
        job = ml.train(ds.name, "species", estimator="lightgbm_classifier").wait()
        print(job.metrics, ml.load_model(job.model_name).predict(frame))

Modules starting with `_` are private; everything public is re-exported here. The generated
messages and stubs live in `microlearn.v1`.
"""

from microlearn._aio import AsyncClient
from microlearn._client import Client, UploadResult
from microlearn._errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    MicroLearnError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from microlearn._deploy import Prediction
from microlearn._jobs import AsyncJob, Job, JobCancelled, JobError, JobEvent, JobFailed
from microlearn._models import Model

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "AsyncJob",
    "Cancelled",
    "Client",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "Job",
    "JobCancelled",
    "JobError",
    "JobEvent",
    "JobFailed",
    "MicroLearnError",
    "Model",
    "NotFound",
    "PermissionDenied",
    "Prediction",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UploadResult",
]

# Present the public names as living here (as httpx does), so reprs and tracebacks show
# `microlearn.NotFound` rather than a private module path.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
