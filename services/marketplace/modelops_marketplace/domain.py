"""What the marketplace refuses, as problems."""

from __future__ import annotations

from modelops_shared.errors import DomainError, Invalid, NotFound


class ListingNotFound(NotFound):
    slug = "listing-not-found"

    def __init__(self, artifact_id: str) -> None:
        super().__init__(f"no listing {artifact_id!r}", listing=artifact_id)


class NotListable(Invalid):
    """Only registered, signed, verified adapters and quantized models that are not revoked are listed."""

    slug = "not-listable"


class NotPublisher(DomainError):
    status = 403
    slug = "not-the-publisher"

    def __init__(self, artifact_id: str) -> None:
        super().__init__(f"only who made {artifact_id}, or an admin, may publish it", listing=artifact_id)


class RatingTooOften(DomainError):
    status = 429
    slug = "rating-rate-limited"


class BaseUnusable(Invalid):
    """The base model to check against is not a registered, verifiable model."""

    slug = "invalid-base-model"


class CanaryBusy(DomainError):
    """One model is loaded for a live canary at a time; the others are refused rather than queued."""

    status = 429
    slug = "canary-busy"


class RegistryUnavailable(DomainError):
    status = 503
    slug = "registry-unavailable"
