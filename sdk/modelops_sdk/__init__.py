"""ModelOps Python SDK: typed sync and async clients of the gateway, and the `modelops` CLI."""

from ._async.client import AsyncClient
from ._sync.client import Client
from .errors import ApiError, ConnectionFailed, ModelOpsError, VerificationFailed
from .events import JobEvent
from .retrying import RetryPolicy

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "JobEvent",
    "ModelOpsError",
    "RetryPolicy",
    "VerificationFailed",
]
