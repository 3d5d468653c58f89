"""Domain errors: what a service's own rules refuse, raised by logic that knows nothing of HTTP. Each names the
problem type (`slug`) and the status it answers with; the app's problem handlers turn it into problem+json at the
edge, so no module below a route raises an HTTP exception."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal a client may see: `str(error)` is safe to show; `extensions` become members of the problem."""

    slug: str = "domain-error"
    status: int = 400

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self._extensions = extensions

    @property
    def extensions(self) -> dict[str, Any]:
        return self._extensions


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    status = 422
