"""A job's live events over Server-Sent Events and a WebSocket: in order, resumed after a dropped connection without
a duplicate or a gap, ended after the terminal event, and woken by commits made through another connection pool (as
another replica's consumer would make them)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg
import pytest
import websockets
from modelops_contracts import TrainingCompleted, TrainingProgressed, TrainingStarted
from modelops_gateway.jobs.store import record_event
from websockets.asyncio.client import connect

from .jobs_support import JobWorld, sse_events
from .test_gateway_auth import assert_problem

STREAM_WAIT_S = 30


async def _submit(gateway, world: JobWorld) -> str:
    async with gateway.client(world.developer.secret) as dev:
        accepted = await dev.post("/v1/jobs/training", json=world.training_request())
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["id"]


def _progress(job_id: str, step: int) -> TrainingProgressed:
    return TrainingProgressed(
        job_id=job_id,
        step=step,
        total_steps=4,
        loss=2.0 / step,
        learning_rate=1e-3,
        tokens_per_second=10,
        eta_seconds=1,
    )


async def test_sse_sends_the_backlog_then_live_events_in_order_and_resumes_after_a_drop(gateway, world):
    job_id = await _submit(gateway, world)
    await world.bus.publish(TrainingStarted(job_id=job_id, worker="w", total_steps=4))
    async with gateway.client(world.viewer.secret) as view:
        async with asyncio.timeout(STREAM_WAIT_S):
            async with view.stream("GET", f"/v1/jobs/{job_id}/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                first = await sse_events(response, limit=2)  # the backlog: queued, started
            # The connection dropped; events keep coming meanwhile.
            for step in (1, 2, 3):
                await world.bus.publish(_progress(job_id, step))

            async with view.stream(
                "GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": first[-1].id}
            ) as resumed:
                # Some of these arrive as backlog, the last ones live; the stream ends by itself after completion.
                await world.bus.publish(_progress(job_id, 4))
                await world.bus.publish(
                    TrainingCompleted(job_id=job_id, adapter_artifact_id="art-a", steps=4, duration_seconds=1)
                )
                rest = await sse_events(resumed)

    events = first + rest
    assert [e.id for e in events] == [str(seq) for seq in range(1, 8)]  # no duplicate, no gap
    assert [e.event for e in events] == ["queued", "started", *["progressed"] * 4, "completed"]
    assert [e.data["data"]["step"] for e in events if e.event == "progressed"] == [1, 2, 3, 4]
    assert all(e.data["job_id"] == job_id and str(e.data["id"]) == e.id for e in events)
    assert events[-1].data["data"]["adapter_artifact_id"] == "art-a"

    async with gateway.client(world.viewer.secret) as view:
        # Resuming after the terminal event: nothing more will come, which 204 tells an EventSource.
        finished = await view.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "7"})
        assert finished.status_code == 204
        # From an earlier point, the rest of the history, then the end.
        async with view.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "5"}) as tail:
            assert [e.id for e in await sse_events(tail)] == ["6", "7"]
        assert_problem(await view.get("/v1/jobs/ftjob-none/events"), 404, "job-not-found")
        bad = await view.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "abc"})
        assert_problem(bad, 422, "validation-error")
    async with gateway.client() as anonymous:
        assert_problem(await anonymous.get(f"/v1/jobs/{job_id}/events"), 401, "unauthorized")


async def test_a_commit_through_another_pool_wakes_an_open_stream(gateway, world, embedded_stack):
    """What another replica's consumer commits reaches this replica's streams through Postgres NOTIFY, without
    waiting for the streams' periodic re-read (made long here so that only a notification can explain a quick one)."""
    job_id = await _submit(gateway, world)
    feed = gateway.state.feed
    recheck, feed.recheck_s = feed.recheck_s, 600
    other_replica = await asyncpg.connect(
        embedded_stack.database_url.get_secret_value(), server_settings={"search_path": gateway.settings.gateway_schema}
    )
    await other_replica.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    stream = {"url": f"/v1/jobs/{job_id}/events", "headers": {"Last-Event-ID": "1"}}
    try:
        async with gateway.client(world.viewer.secret) as view, view.stream("GET", **stream) as response:
            reader = asyncio.create_task(sse_events(response, limit=1))
            await asyncio.sleep(0.5)  # the stream has read its (empty) backlog and waits
            async with other_replica.transaction():
                await record_event(
                    other_replica, job_id, "started", {"worker": "elsewhere"}, at=datetime.now(UTC), changes={}
                )
            async with asyncio.timeout(10):
                [event] = await reader
        assert (event.id, event.event, event.data["data"]) == ("2", "started", {"worker": "elsewhere"})
    finally:
        feed.recheck_s = recheck
        await other_replica.close()


async def test_the_websocket_streams_the_same_events_and_resumes(gateway, world):
    job_id = await _submit(gateway, world)
    ws_url = gateway.url.replace("http://", "ws://") + f"/v1/jobs/{job_id}/ws"
    await world.bus.publish(TrainingStarted(job_id=job_id, worker="w", total_steps=4))
    async with asyncio.timeout(STREAM_WAIT_S):
        headers = {"Authorization": f"Bearer {world.viewer.secret}"}
        async with connect(ws_url, additional_headers=headers) as socket:
            first = [json.loads(await socket.recv()) for _ in range(2)]
        await world.bus.publish(_progress(job_id, 1))
        # A browser cannot set headers on a WebSocket: the key goes in the query.
        resume = f"{ws_url}?api_key={world.viewer.secret}&last_event_id={first[-1]['id']}"
        async with connect(resume) as socket:
            await world.bus.publish(
                TrainingCompleted(job_id=job_id, adapter_artifact_id="art-b", steps=4, duration_seconds=1)
            )
            rest = [json.loads(message) async for message in socket]  # ends when the server closes
            assert socket.close_code == 1000
    events = first + rest
    assert [e["id"] for e in events] == [1, 2, 3, 4]
    assert [e["type"] for e in events] == ["queued", "started", "progressed", "completed"]


async def test_a_websocket_without_a_good_key_or_job_is_refused_with_the_http_problem(gateway, world):
    job_id = await _submit(gateway, world)
    base = gateway.url.replace("http://", "ws://") + "/v1/jobs"
    refusals = [
        (f"{base}/{job_id}/ws", 401),
        (f"{base}/{job_id}/ws?api_key=mok_wrong", 401),
        (f"{base}/ftjob-none/ws?api_key={world.viewer.secret}", 404),
    ]
    for url, status in refusals:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(url):
                pass
        response = refused.value.response
        assert response.status_code == status
        assert json.loads(response.body)["status"] == status


async def test_a_quiet_stream_sends_keep_alive_comments(gateway, world):
    job_id = await _submit(gateway, world)
    settings = gateway.state.settings
    ping, settings.gateway_stream_ping_s = settings.gateway_stream_ping_s, 0.1
    comments = []
    try:
        async with (
            gateway.client(world.viewer.secret) as view,
            view.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "1"}) as response,
            asyncio.timeout(STREAM_WAIT_S),
        ):
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    comments.append(line)  # a comment: EventSource ignores it, proxies see traffic
                    break
    finally:
        settings.gateway_stream_ping_s = ping
    assert comments, "the stream ended without a keep-alive comment"
