"""The adapter marketplace: listings materialised from the registry's signed artifact events (a prod adapter or
quantized model is listed, a revoked one delisted) or published by their creator; its usage events (downloads and
installs, marketplace → marketplace, so that counts are projections exact under redelivery); and its HTTP models,
which the gateway documents and relays as they are."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from .artifacts import FREE_TEXT_PATTERN, REF_PATTERN, TEXT_PATTERN
from .messages import Message

TAG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
Tag = Annotated[str, Field(pattern=TAG_PATTERN)]


class ListingDownloaded(Message):
    type: ClassVar[str] = "modelops.marketplace.downloaded.v1"
    subject_field: ClassVar[str] = "artifact_id"

    artifact_id: str
    by: str


class ListingInstalled(Message):
    type: ClassVar[str] = "modelops.marketplace.installed.v1"
    subject_field: ClassVar[str] = "artifact_id"

    artifact_id: str
    by: str
    deployment: str
    base_model: str


class PublishRequest(BaseModel):
    """What a publisher says of an artifact beyond its signed card."""

    model_config = {"extra": "forbid"}

    artifact_id: str = Field(pattern=REF_PATTERN)
    title: str = Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)
    description: str = Field("", max_length=10_000, pattern=FREE_TEXT_PATTERN)
    tasks: list[Tag] = Field([], max_length=16, description="e.g. extraction, summarization, chat")
    license: str = Field("", max_length=100, pattern=TEXT_PATTERN, description="An SPDX identifier, e.g. apache-2.0")
    languages: list[Tag] = Field([], max_length=32, description="ISO 639-1 codes, e.g. en")
    examples: list[Annotated[str, Field(max_length=2000, pattern=FREE_TEXT_PATTERN)]] = Field([], max_length=10)


class Rating(BaseModel):
    average: float | None
    count: int


class ListingView(BaseModel):
    id: str = Field(description="The listed artifact's id")
    kind: Literal["adapter", "quantized_model"]
    name: str
    version: str
    stage: str
    title: str
    description: str
    tasks: list[str]
    license: str
    languages: list[str]
    examples: list[str]
    publisher: str
    base_model: str | None = Field(description="Artifact id of the base it was trained on or quantized from")
    base_model_name: str | None
    architecture: str | None
    rank: int | None = Field(description="LoRA rank, for an adapter")
    quantization: str | None = Field(description="GGUF format, for a quantized model")
    key_id: str = Field(description="The registry key that signed it")
    digest: str = Field(description="sha256 of its signed in-toto statement")
    verified: bool = Field(description="Signature and every file checked by the marketplace when it was listed")
    verified_at: datetime | None
    card: str = Field(description="The model card, Markdown")
    metrics: dict[str, Any]
    downloads: int
    installs: int
    rating: Rating
    listed_at: datetime


class ListingPage(BaseModel):
    data: list[ListingView]
    total: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class CompatibilityView(BaseModel):
    listing: str
    base_model: str
    compatible: bool
    reasons: list[str] = Field(description="Why not, one per failed check; empty when compatible")
    checks: list[Check]
    canary: dict[str, Any] | None = Field(None, description="With `canary=true`: the adapter run on the base")


class RatingRequest(BaseModel):
    model_config = {"extra": "forbid"}

    stars: int = Field(ge=1, le=5)
    review: str = Field("", max_length=4000, pattern=FREE_TEXT_PATTERN)


class RatingView(BaseModel):
    listing: str
    rater: str
    stars: int
    review: str
    rated_at: datetime
    rating: Rating


class InstallRecord(BaseModel):
    """What the gateway tells the marketplace once it staged the deployment of an install."""

    deployment: str = Field(max_length=64, pattern=TEXT_PATTERN)
    base_model: str = Field(pattern=REF_PATTERN)
