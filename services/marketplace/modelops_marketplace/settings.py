"""Marketplace settings: the shared ones plus its schema, consumer groups, scratch space and the rating limit."""

from __future__ import annotations

from pathlib import Path

from modelops_shared.settings import Settings
from pydantic import Field


class MarketplaceSettings(Settings):
    service_name: str = "marketplace"
    marketplace_schema: str = Field("marketplace", description="Postgres schema: listings, ratings, the outbox")
    marketplace_work_dir: Path | None = Field(
        None, description="Verified copies of listed artifacts and download archives; default <state_dir>/marketplace"
    )
    marketplace_ratings_per_minute: int = Field(5, ge=1, description="Ratings one API key may give per minute")
    marketplace_canary_prompt: str = Field(
        "The quick brown fox", description="What the live compatibility canary runs through base and adapter"
    )

    @property
    def work_dir(self) -> Path:
        return self.marketplace_work_dir or self.state_dir / "marketplace"
