"""The bodies of the usage routes: usage summed per key, job or deployment; budgets."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class UsageRow(BaseModel):
    """One key's, job's or deployment's use, summed; `peak_memory_bytes` is the highest of its records."""

    key: str = Field(description="The API key holder it is charged to")
    job_id: str | None = None
    kind: str | None = Field(None, description="A job's kind")
    deployment: str | None = None
    wall_seconds: float
    cpu_seconds: float
    gpu_seconds: float
    peak_memory_bytes: int
    tokens: int
    requests: int = Field(description="Requests served (deployments)")
    cost: float
    currency: str
    first_at: datetime
    last_at: datetime
    budget: float | None = Field(None, description="by=key: the key's budget, if it has one")
    committed: float | None = Field(None, description="by=key: spent, plus estimates of jobs not measured yet")


class UsageReport(BaseModel):
    by: Literal["key", "job", "deployment"]
    data: list[UsageRow]


class BudgetRequest(BaseModel):
    amount: float = Field(ge=0, le=1e12, strict=True, description="In the price table's currency; 0 refuses every job")


class BudgetView(BaseModel):
    key: str
    amount: float
    currency: str
    set_by: str
    set_at: datetime
