"""The SDK's exceptions: an API error carries the gateway's RFC 9457 problem fields."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance")


# What to do about an error, by HTTP status, where the problem document says nothing more specific (`hint`).
_HINTS = {
    400: "fix the request as the detail says",
    401: "check the API key (MODELOPS_API_KEY, --api-key, or `modelops config set`)",
    403: "this API key's role may not do this: use a key with the role it needs (an admin can create one)",
    404: "check the name or id; something submitted a moment ago may still be on its way to the registry: retry soon",
    409: "it changed meanwhile: look at it again, then retry",
    413: "the request is larger than the gateway accepts: send less at a time",
    422: "fix the request as the detail says",
    429: "too many requests: wait and retry",
}
_SERVER_HINT = "the platform failed: see the services' logs (on the embedded stack: `make status`, .modelops/logs/)"


def hint_for(status: int) -> str:
    """What an HTTP error status usually calls for."""
    return _SERVER_HINT if status >= 500 else _HINTS.get(status, _HINTS[400])


class ModelOpsError(Exception):
    """Anything the SDK raises; `hint` says what to do about it."""

    hint = "see the message above"


class ConnectionFailed(ModelOpsError):
    """The gateway could not be reached, or the connection kept failing, after every retry."""

    hint = "is the gateway running at that URL? `make up` starts the embedded stack, `make status` shows it"


class VerificationFailed(ModelOpsError):
    """An artifact's bundle signature or a file digest did not verify."""


class ImportFailed(ModelOpsError):
    """The trainer refused an imported model file; nothing was registered."""

    hint = "check that the file is a GGUF of a llama-architecture model"


class QuantizationFailed(ModelOpsError):
    """A quantization job failed or was cancelled; nothing it would have made was registered."""

    hint = "read the reason; `modelops artifacts show` the model and adapter it names"


class EvaluationFailed(ModelOpsError):
    """An evaluation job failed or was cancelled; no report was registered."""

    hint = "read the reason; check the suite's rows (`modelops datasets show`) and the metrics' parameters"


class IndexingFailed(ModelOpsError):
    """An index job failed or was cancelled; the collection keeps its previous index."""

    hint = "read the reason; `modelops rag documents` lists what the job was given"


class ApiError(ModelOpsError):
    """The gateway answered with an error: `application/problem+json` fields, `extensions` for the other members."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        type: str = "about:blank",
        detail: str | None = None,
        instance: str | None = None,
        extensions: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.type = type
        self.detail = detail
        self.instance = instance
        self.extensions = extensions or {}
        self.retry_after = retry_after

    @property
    def hint(self) -> str:  # type: ignore[override]  # computed per error, a class attribute elsewhere
        """What to do: the problem's own `hint` member when it has one, else what the status usually calls for."""
        if "hint" in self.extensions:
            return str(self.extensions["hint"])
        return hint_for(self.status)

    @property
    def slug(self) -> str:
        """The problem type's last path segment (`job-not-found`), stable across deployments."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # Not a problem document (a proxy's HTML page, an empty body): keep what there is.
            body = {"detail": response.text[:500] or None}
        return cls(
            response.status_code,
            str(body.get("title") or response.reason_phrase),
            type=str(body.get("type") or "about:blank"),
            detail=body.get("detail"),
            instance=body.get("instance"),
            extensions={k: v for k, v in body.items() if k not in PROBLEM_FIELDS},
            retry_after=_seconds(response.headers.get("Retry-After")),
        )


def _seconds(value: str | None) -> float | None:
    # The gateway sends delta-seconds; an HTTP date (allowed by RFC 9110) is left to the backoff.
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
