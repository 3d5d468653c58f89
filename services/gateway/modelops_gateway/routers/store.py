"""The `route_decisions` table: the projection of router.events.v1 (each decision once, whatever the redelivery; a
correction on its decision), and the statistics and feedback rows read from it.

Produces: router.events.v1 (RouteDecided, RouteCorrected), through the outbox."""

from __future__ import annotations

from typing import Any

import asyncpg
from modelops_contracts import RouteCorrected, RouteDecided
from modelops_shared.bus import Bus, enqueue


async def stage(conn: asyncpg.Connection, bus: Bus, event: RouteDecided | RouteCorrected) -> None:
    await enqueue(conn, bus, event, correlation_id=event.decision_id)


async def record_decision(conn: asyncpg.Connection, decided: RouteDecided, at: Any) -> None:
    await conn.execute(
        """INSERT INTO route_decisions (decision_id, router, router_artifact, prompt_sha256, label, target, margin,
               fallback, requested_by, decided_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (decision_id) DO NOTHING""",
        decided.decision_id,
        decided.router,
        decided.router_artifact,
        decided.prompt_sha256,
        decided.label,
        decided.target.model_dump(mode="json"),
        decided.margin,
        decided.fallback,
        decided.requested_by,
        at,
    )


async def record_correction(conn: asyncpg.Connection, corrected: RouteCorrected, at: Any) -> bool:
    """False when the decision is not (yet) recorded here."""
    updated = await conn.fetchval(
        """UPDATE route_decisions SET corrected_label = $2, corrected_prompt = $3, corrected_by = $4, corrected_at = $5
           WHERE decision_id = $1 AND router = $6 RETURNING true""",
        corrected.decision_id,
        corrected.label,
        corrected.prompt,
        corrected.corrected_by,
        at,
        corrected.router,
    )
    return bool(updated)


async def decision(pool: asyncpg.Pool, router: str, decision_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT decision_id, prompt_sha256, label, requested_by FROM route_decisions"
        " WHERE decision_id = $1 AND router = $2",
        decision_id,
        router,
    )


async def stats(pool: asyncpg.Pool, router: str) -> dict[str, Any]:
    rows = await pool.fetch(
        """SELECT label, count(*) AS decisions, count(*) FILTER (WHERE fallback) AS fallbacks,
                  sum(margin) AS margins, count(corrected_label) AS corrected
           FROM route_decisions WHERE router = $1 GROUP BY label""",
        router,
    )
    decisions = sum(row["decisions"] for row in rows)
    return {
        "router": router,
        "decisions": decisions,
        "by_target": {row["label"]: row["decisions"] for row in rows},
        "fallbacks": sum(row["fallbacks"] for row in rows),
        "mean_margin": sum(row["margins"] for row in rows) / decisions if decisions else None,
        "corrected": sum(row["corrected"] for row in rows),
    }


async def feedback_rows(pool: asyncpg.Pool, router: str, limit: int) -> list[dict[str, str]]:
    """The corrected decisions as routing rows (`prompt`, `target`), oldest first."""
    rows = await pool.fetch(
        """SELECT corrected_prompt, corrected_label FROM route_decisions
           WHERE router = $1 AND corrected_label IS NOT NULL ORDER BY corrected_at, decision_id LIMIT $2""",
        router,
        limit,
    )
    return [{"prompt": row["corrected_prompt"], "target": row["corrected_label"]} for row in rows]
