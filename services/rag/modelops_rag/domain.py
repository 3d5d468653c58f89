"""What the rag service refuses, as problems (HTTP) or job failures (index jobs)."""

from __future__ import annotations

from modelops_shared.errors import Conflict, DomainError, Invalid, NotFound


class CollectionNotFound(NotFound):
    slug = "collection-not-found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no collection {name!r}", collection=name)


class CollectionExists(Conflict):
    slug = "collection-exists"

    def __init__(self, name: str) -> None:
        super().__init__(f"a collection {name!r} exists", collection=name)


class NotOwner(DomainError):
    status = 403
    slug = "not-collection-owner"

    def __init__(self, name: str) -> None:
        super().__init__(f"only the owner of {name!r} or an admin may change it", collection=name)


class IndexJobNotFound(NotFound):
    slug = "index-job-not-found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no index job {job_id!r}", job_id=job_id)


class IndexingInProgress(Conflict):
    slug = "indexing-in-progress"

    def __init__(self, name: str, job_id: str) -> None:
        super().__init__(f"collection {name!r} is being indexed by {job_id}", collection=name, job_id=job_id)


class JobFinished(Conflict):
    slug = "job-finished"

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} is already {status}", job_id=job_id, job_status=status)


class NothingToIndex(Invalid):
    slug = "no-documents"

    def __init__(self, name: str) -> None:
        super().__init__(f"collection {name!r} has no documents", collection=name)


class NotIndexed(Conflict):
    slug = "collection-not-indexed"

    def __init__(self, name: str) -> None:
        super().__init__(f"collection {name!r} has no index yet: index it first", collection=name)


class UnreadableDocument(Invalid):
    slug = "unreadable-document"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}", document=name)


class UnusableEmbeddingModel(Invalid):
    slug = "invalid-embedding-model"


class IndexUnavailable(DomainError):
    """The index is signed but not registered yet, or its store could not be read: try again shortly."""

    status = 503
    slug = "index-unavailable"


class AnswerFailed(DomainError):
    """The deployment asked for an answer refused or failed; its problem is passed on."""

    status = 502
    slug = "deployment-error"
