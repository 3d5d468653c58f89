"""SQL of usage records and budgets (migration 0013): recorded from usage.events.v1, summed per key, job or
deployment; what a key has committed against its budget; the measured cost of a training token."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
from modelops_contracts import ResourceUsage

Grouping = Literal["key", "job", "deployment"]
# A training token's cost is the median over this many of the latest measured training jobs.
RATE_SAMPLE = 50
RATE_KEPT_S = 5.0  # how long a submission's estimate may use a cost measured before
# Advisory locks per owner (transaction scoped): on the budget itself, and on spending it.
_BUDGET_LOCK = "hashtext('gateway_budget:' || $1)"
_SPEND_LOCK = "hashtext('gateway_budget_spend:' || $1)"


@dataclass(frozen=True)
class UsageRecord:
    """One measured use, priced: a job's end, or a deployment's period on one replica."""

    message_id: str
    source: Literal["job", "deployment"]
    subject: str
    kind: str
    owner: str
    worker: str
    period_start: datetime
    period_end: datetime
    requests: int
    usage: ResourceUsage
    cost: float
    currency: str


async def record(conn: asyncpg.Connection, entry: UsageRecord) -> None:
    used = entry.usage
    await conn.execute(
        "INSERT INTO usage_records (message_id, source, subject, kind, owner, worker, period_start, period_end,"
        " wall_seconds, cpu_seconds, gpu_seconds, peak_memory_bytes, tokens, requests, cost, currency)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        " ON CONFLICT (message_id) DO NOTHING",
        entry.message_id,
        entry.source,
        entry.subject,
        entry.kind,
        entry.owner,
        entry.worker,
        entry.period_start,
        entry.period_end,
        used.wall_seconds,
        used.cpu_seconds,
        used.gpu_seconds,
        used.peak_memory_bytes,
        used.tokens,
        entry.requests,
        entry.cost,
        entry.currency,
    )


async def job_owner(conn: asyncpg.Connection, job_id: str) -> str | None:
    """Who submitted the job through this gateway, whatever its kind."""
    owner: str | None = await conn.fetchval(
        "SELECT submitted_by FROM jobs WHERE id = $1"
        " UNION ALL SELECT submitted_by FROM quantization_jobs WHERE id = $1"
        " UNION ALL SELECT submitted_by FROM evaluation_jobs WHERE id = $1 LIMIT 1",
        job_id,
    )
    return owner


async def deployment_owner(conn: asyncpg.Connection, name: str) -> str | None:
    """Who requested the deployment (its latest Deploy through this gateway)."""
    owner: str | None = await conn.fetchval("SELECT requested_by FROM deployments WHERE name = $1", name)
    return owner


_GROUPS: dict[Grouping, tuple[str, str]] = {
    "key": ("owner AS key", "owner"),
    "job": ("subject AS job_id, kind, min(owner) AS key", "subject, kind"),
    "deployment": ("subject AS deployment, min(owner) AS key", "subject"),
}
_SOURCES: dict[Grouping, str] = {"key": "true", "job": "source = 'job'", "deployment": "source = 'deployment'"}


async def totals(pool: asyncpg.Pool, by: Grouping, owner: str | None, limit: int) -> list[dict[str, Any]]:
    """Usage summed per key, job or deployment (only `owner`'s when given), the costliest first."""
    selected, grouped = _GROUPS[by]
    rows = await pool.fetch(
        f"SELECT {selected}, sum(wall_seconds) AS wall_seconds, sum(cpu_seconds) AS cpu_seconds,"
        " sum(gpu_seconds) AS gpu_seconds, max(peak_memory_bytes) AS peak_memory_bytes, sum(tokens) AS tokens,"
        " sum(requests) AS requests, sum(cost) AS cost, min(currency) AS currency, min(period_start) AS first_at,"
        " max(period_end) AS last_at"
        f" FROM usage_records WHERE {_SOURCES[by]} AND ($1::text IS NULL OR owner = $1)"
        f" GROUP BY {grouped} ORDER BY sum(cost) DESC, 1 LIMIT $2",
        owner,
        limit,
    )
    return [dict(row) for row in rows]


async def committed(conn: asyncpg.Connection, owner: str) -> float:
    """What the owner's usage cost so far, plus the estimates of their training jobs whose usage has not come."""
    spent: float = await conn.fetchval(
        "SELECT coalesce(sum(cost), 0) FROM usage_records WHERE owner = $1", owner
    ) + await conn.fetchval(
        "SELECT coalesce(sum(estimated_cost), 0) FROM jobs j WHERE submitted_by = $1 AND estimated_cost IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.source = 'job' AND u.subject = j.id)",
        owner,
    )
    return spent


async def lock_budget(conn: asyncpg.Connection, owner: str) -> float | None:
    """The owner's budget, locked until the transaction ends. Submissions under a budget take turns (two jobs at once
    cannot both spend the last of it); those of an owner without one, most of them, only share the lock that keeps a
    budget from being set or lifted under them (`set_budget`, `remove_budget`), so they run side by side."""
    await conn.execute(f"SELECT pg_advisory_xact_lock_shared({_BUDGET_LOCK})", owner)
    # A statement of its own, after the lock: one statement's snapshot would predate a budget set while it waited.
    amount: float | None = await conn.fetchval("SELECT amount FROM budgets WHERE owner = $1", owner)
    if amount is not None:
        await conn.execute(f"SELECT pg_advisory_xact_lock({_SPEND_LOCK})", owner)
    return amount


async def training_token_cost(pool: asyncpg.Pool) -> float | None:
    """The median cost of a training token over the latest measured training jobs; None before the first."""
    rate: float | None = await pool.fetchval(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY cost / tokens) FROM (SELECT cost, tokens FROM"
        " usage_records WHERE source = 'job' AND kind = 'training' AND tokens > 0 ORDER BY period_end DESC LIMIT $1)"
        " latest",
        RATE_SAMPLE,
    )
    return rate


class TrainingTokenCost:
    """`training_token_cost`, kept for `ttl_s`: every submission's estimate reads it, and it moves only as measured
    training jobs end."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._kept: tuple[float, float | None] | None = None

    async def __call__(self) -> float | None:
        now = time.monotonic()
        if self._kept is None or self._kept[0] <= now:
            self._kept = (now + self.ttl_s, await training_token_cost(self.pool))
        return self._kept[1]


async def budgets(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(row) for row in await pool.fetch("SELECT owner, amount, set_by, set_at FROM budgets ORDER BY owner")]


async def set_budget(conn: asyncpg.Connection, owner: str, amount: float, set_by: str) -> dict[str, Any]:
    """Set in `conn`'s transaction, once the owner's submissions in flight have committed (lock_budget)."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({_BUDGET_LOCK})", owner)
    row = await conn.fetchrow(
        "INSERT INTO budgets (owner, amount, set_by) VALUES ($1, $2, $3) ON CONFLICT (owner) DO UPDATE"
        " SET amount = $2, set_by = $3, set_at = now() RETURNING owner, amount, set_by, set_at",
        owner,
        amount,
        set_by,
    )
    return dict(row)


async def remove_budget(conn: asyncpg.Connection, owner: str) -> bool:
    """Lifted in `conn`'s transaction, as `set_budget` sets it."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({_BUDGET_LOCK})", owner)
    return await conn.fetchval("DELETE FROM budgets WHERE owner = $1 RETURNING true", owner) is not None
