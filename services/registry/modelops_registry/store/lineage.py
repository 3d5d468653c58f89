"""Lineage as OpenLineage run events: one COMPLETE run per derived artifact, its parents as inputs."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import asyncpg

NAMESPACE = "modelops"
PRODUCER = "https://modelops.dev/services/registry"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


async def openlineage_events(conn: asyncpg.Connection, graph: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The edges of `graph` grouped by child, each child a run whose inputs are its parents (oldest first)."""
    parents_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for edge in (*graph["ancestors"], *graph["descendants"]):
        if edge not in parents_of[edge["child_id"]]:
            parents_of[edge["child_id"]].append(edge)
    times = {
        row["id"]: row
        for row in await conn.fetch(
            "SELECT id, kind, job_id, created_at FROM artifacts WHERE id = any($1::text[])", list(parents_of)
        )
    }
    deployments = {
        row["name"]: row
        for row in await conn.fetch(
            "SELECT name, updated_at FROM deployments WHERE 'deployment:' || name = any($1::text[])", list(parents_of)
        )
    }
    events = []
    for child, edges in parents_of.items():
        artifact = times.get(child)
        deployment = deployments.get(child.removeprefix("deployment:"))
        event_time = artifact["created_at"] if artifact else deployment["updated_at"] if deployment else None
        relations = sorted({edge["relation"] for edge in edges})
        job_name = artifact["job_id"] if artifact and artifact["job_id"] else f"{'+'.join(relations)}:{child}"
        events.append(
            {
                "eventType": "COMPLETE",
                "eventTime": event_time.isoformat() if event_time else None,
                "producer": PRODUCER,
                "schemaURL": RUN_EVENT_SCHEMA,
                # A stable id, so the same lineage reported twice is the same run.
                "run": {"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PRODUCER}/{child}"))},
                "job": {"namespace": NAMESPACE, "name": job_name},
                "inputs": [{"namespace": NAMESPACE, "name": edge["parent_id"]} for edge in edges],
                "outputs": [{"namespace": NAMESPACE, "name": child}],
            }
        )
    return sorted(events, key=lambda event: event["eventTime"] or "")
