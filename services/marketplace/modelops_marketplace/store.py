"""The marketplace's tables: listings (state from the registry, what publishers say, counts), ratings."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_VIEW = """artifact_id AS id, kind, name, version, stage, title, description, tasks, license, languages, examples,
    coalesce(publisher, created_by) AS publisher, base_model, base_model_name, architecture, rank, quantization, key_id,
    digest, verified, verified_at, card, metrics, downloads, installs, listed_at,
    json_build_object('average', CASE WHEN rating_count > 0 THEN round(rating_sum::numeric / rating_count, 2) END,
                      'count', rating_count) AS rating"""
SORTS = {
    "downloads": "downloads DESC, listed_at DESC",
    "rating": "(CASE WHEN rating_count > 0 THEN rating_sum::float / rating_count END) DESC NULLS LAST, listed_at DESC",
    "recent": "listed_at DESC",
}


async def record_registered(conn: Conn, event: dict[str, Any]) -> None:
    """An artifact the registry signed: known (not listed) until it reaches prod or is published."""
    await conn.execute(
        """INSERT INTO listings (artifact_id, kind, name, version, stage, key_id, digest, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, '') ON CONFLICT (artifact_id) DO NOTHING""",
        event["artifact_id"],
        event["kind"],
        event["name"],
        event["version"],
        event["stage"],
        event["key_id"],
        event["digest"],
    )


async def set_stage(conn: Conn, artifact_id: str, stage: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "UPDATE listings SET stage = $2 WHERE artifact_id = $1 RETURNING artifact_id, kind, listed, publisher",
        artifact_id,
        stage,
    )
    return dict(row) if row else None


async def known(conn: Conn, artifact_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT listed, publisher FROM listings WHERE artifact_id = $1", artifact_id)
    return dict(row) if row else None


async def list_artifact(conn: Conn, artifact_id: str, fields: dict[str, Any]) -> None:
    """List it with what its verification found (and what its publisher says, when published); never one revoked or
    archived meanwhile."""
    columns = list(fields)
    assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, 2))
    await conn.execute(
        f"""UPDATE listings SET {assignments}, listed = true, delisted_reason = NULL,
                listed_at = coalesce(listed_at, now())
            WHERE artifact_id = $1 AND stage NOT IN ('revoked', 'archived')""",
        artifact_id,
        *fields.values(),
    )


async def delist(conn: Conn, artifact_id: str, reason: str) -> None:
    await conn.execute(
        "UPDATE listings SET listed = false, delisted_reason = $2 WHERE artifact_id = $1", artifact_id, reason
    )


async def listing(conn: Conn, artifact_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_VIEW} FROM listings WHERE artifact_id = $1 AND listed", artifact_id)
    return dict(row) if row else None


async def search(
    conn: Conn, *, q: str | None, filters: dict[str, Any], sort: str, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of listed artifacts matching the query and filters, and how many match in all."""
    clauses, args = ["listed"], []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if q:
        clauses.append(f"search @@ websearch_to_tsquery('english', {arg(q)})")
    if base := filters.get("base_model"):
        clauses.append(f"{arg(base)} IN (base_model, base_model_name, base_digest)")
    if task := filters.get("task"):
        clauses.append(f"{arg(task)} = ANY(tasks)")
    if quantization := filters.get("quantization"):
        clauses.append(f"quantization = {arg(quantization)}")
    if license_ := filters.get("license"):
        clauses.append(f"license = {arg(license_)}")
    if filters.get("rank") is not None:
        clauses.append(f"rank = {arg(filters['rank'])}")
    if filters.get("min_rating") is not None:
        clauses.append(f"rating_count > 0 AND rating_sum::float / rating_count >= {arg(filters['min_rating'])}")
    if filters.get("kind"):
        clauses.append(f"kind = {arg(filters['kind'])}")
    where = " AND ".join(clauses)
    # Relevance ranks by the query, which is always the first argument when there is one (the caller sees to that).
    ranked = "ts_rank(search, websearch_to_tsquery('english', $1)) DESC, listed_at DESC"
    order = (ranked if q else SORTS["recent"]) if sort == "relevance" else SORTS[sort]
    total = await conn.fetchval(f"SELECT count(*) FROM listings WHERE {where}", *args)
    rows = await conn.fetch(
        f"SELECT {_VIEW} FROM listings WHERE {where} ORDER BY {order} OFFSET {arg(offset)} LIMIT {arg(limit)}", *args
    )
    return [dict(row) for row in rows], int(total)


async def rate(conn: asyncpg.Connection, artifact_id: str, rater: str, stars: int, review: str) -> dict[str, Any]:
    """Give or replace `rater`'s rating; the listing's sum and count follow in the same transaction."""
    previous = await conn.fetchval(
        "SELECT stars FROM ratings WHERE artifact_id = $1 AND rater = $2 FOR UPDATE", artifact_id, rater
    )
    row = await conn.fetchrow(
        """INSERT INTO ratings (artifact_id, rater, stars, review) VALUES ($1, $2, $3, $4)
           ON CONFLICT (artifact_id, rater) DO UPDATE SET stars = $3, review = $4, rated_at = now()
           RETURNING artifact_id AS listing, rater, stars, review, rated_at""",
        artifact_id,
        rater,
        stars,
        review,
    )
    await conn.execute(
        "UPDATE listings SET rating_sum = rating_sum + $2, rating_count = rating_count + $3 WHERE artifact_id = $1",
        artifact_id,
        stars - (previous or 0),
        0 if previous is not None else 1,
    )
    await conn.execute("INSERT INTO rating_attempts (rater) VALUES ($1)", rater)
    await conn.execute("DELETE FROM rating_attempts WHERE rater = $1 AND at < now() - interval '1 hour'", rater)
    return dict(row)


async def ratings_in_last_minute(conn: Conn, rater: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM rating_attempts WHERE rater = $1 AND at > now() - interval '1 minute'", rater
    )
    return count


async def count(conn: Conn, artifact_id: str, column: str) -> None:
    """One more download or install (called once per event: the consumer records each event it applied)."""
    assert column in ("downloads", "installs")
    await conn.execute(f"UPDATE listings SET {column} = {column} + 1 WHERE artifact_id = $1", artifact_id)
