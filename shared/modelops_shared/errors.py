"""Domain errors: what a service's own rules refuse, raised by logic that knows nothing of HTTP. Each names the
problem type (`slug`) and the status it answers with; the app's problem handlers turn it into problem+json at the
edge, so no module below a route raises an HTTP exception. Framework-free, as are the media type and base URL."""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://modelops.dev/problems/"


class DomainError(Exception):
    """A refusal a client may see: `str(error)` is safe to show; `extensions` become members of the problem.
    A subclass names its `slug` and `status`; `slug=` and `status=` set them for one error (an upstream's name)."""

    slug: str = "domain-error"
    status: int = 400

    def __init__(self, detail: str, *, slug: str | None = None, status: int | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        if slug is not None:
            self.slug = slug
        if status is not None:
            self.status = status
        self._extensions = extensions

    @property
    def detail(self) -> str | None:
        return str(self)

    @property
    def extensions(self) -> dict[str, Any]:
        return self._extensions


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    status = 422
