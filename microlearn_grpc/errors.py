"""Domain errors raised by the service layer; servicers map them to gRPC status codes.

    DomainError
    ├── InvalidArgument      → INVALID_ARGUMENT    the request is wrong; the message says which field and why
    ├── NotFound             → NOT_FOUND
    ├── AlreadyExists        → ALREADY_EXISTS
    ├── FailedPrecondition   → FAILED_PRECONDITION the request is fine but the system state forbids it
    ├── ResourceExhausted    → RESOURCE_EXHAUSTED  a configured limit was hit
    ├── Aborted              → ABORTED             a concurrent change won; retry
    ├── DataLoss             → DATA_LOSS           a stored artifact failed verification
    ├── Unavailable          → UNAVAILABLE         a backend (database, queue, store) is unreachable
    └── Unimplemented        → UNIMPLEMENTED       a documented option this version does not do yet
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class; `str(error)` is shown to the caller, so it must be actionable and contain no secrets."""


class InvalidArgument(DomainError):
    pass


class NotFound(DomainError):
    pass


class AlreadyExists(DomainError):
    pass


class FailedPrecondition(DomainError):
    pass


class ResourceExhausted(DomainError):
    pass


class Aborted(DomainError):
    pass


class DataLoss(DomainError):
    pass


class Unavailable(DomainError):
    pass


class Unimplemented(DomainError):
    pass
