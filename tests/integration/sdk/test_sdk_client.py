"""The SDK's clients against the real gateway: a 429 retried after its `Retry-After`, problem fields on errors, one
`Idempotency-Key` across a creating call's retries, and a job's event stream resumed after the connection drops."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from modelops_contracts import TrainingCompleted, TrainingProgressed, TrainingStarted
from modelops_sdk import ApiError, AsyncClient, Client, RetryPolicy


async def test_a_429_is_retried_after_the_servers_retry_after(gateway):
    key = await gateway.keys.make("viewer", rate_limit="2/3second")
    statuses: list[int] = []

    async def record(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    async with AsyncClient(gateway.url, key.secret, event_hooks={"response": [record]}) as client:
        started = time.monotonic()
        for _ in range(3):
            await client.datasets.page(limit=1)
    assert statuses[:3] == [200, 200, 429]
    assert statuses[-1] == 200
    assert time.monotonic() - started >= 1  # it waited for the window rather than hammering the gateway


async def test_a_retry_after_beyond_the_policy_is_raised_with_the_problem_fields(gateway):
    key = await gateway.keys.make("viewer", rate_limit="2/minute")
    async with AsyncClient(gateway.url, key.secret, retry=RetryPolicy(max_wait_s=1)) as client:
        await client.jobs.page()
        await client.jobs.page()
        with pytest.raises(ApiError) as raised:
            await client.jobs.page()
    error = raised.value
    assert (error.status, error.slug, error.title) == (429, "rate-limited", "Too Many Requests")
    assert error.retry_after is not None
    assert error.retry_after > 1
    assert error.instance == "/v1/jobs"


async def test_a_creating_call_keeps_its_idempotency_key_across_retries(gateway):
    sent: list[str] = []
    failures = iter([503])
    real = httpx.HTTPTransport()

    class FlakyTransport(httpx.BaseTransport):
        """The first creating request gets a 503 as if a proxy failed; later ones reach the gateway."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                sent.append(request.headers["Idempotency-Key"])
                if (status := next(failures, None)) is not None:
                    return httpx.Response(status, json={"title": "Service Unavailable", "status": status})
            return real.handle_request(request)

    def create() -> str:
        with Client(gateway.url, gateway.admin_key, transport=FlakyTransport()) as client:
            return client.api_keys.create("flaky-holder", "viewer").id

    first = await asyncio.to_thread(create)
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert first in [k["id"] for k in (await gateway.keys.admin.get("/v1/api-keys")).json()]


class DroppingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, but the first event stream breaks (as a dropped connection would) after `events` events."""

    def __init__(self, events: int) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.events = events
        self.resumed_from: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.real.handle_async_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.resumed_from.append(request.headers.get("Last-Event-ID"))
        if len(self.resumed_from) > 1:
            return response
        return httpx.Response(response.status_code, headers=response.headers, stream=self._broken(response))

    def _broken(self, response: httpx.Response) -> httpx.AsyncByteStream:
        limit = self.events

        class Broken(httpx.AsyncByteStream):
            async def __aiter__(self):
                seen = 0
                async for chunk in response.aiter_raw():
                    # Cut after the limit-th event, mid-stream: the rest of this chunk never arrives.
                    cut = 0
                    for end in re.finditer(rb"\r?\n\r?\n", chunk):  # an event ends with a blank line
                        if seen < limit:
                            cut, seen = end.end(), seen + 1
                    yield chunk[:cut] if seen >= limit else chunk
                    if seen >= limit:
                        await response.aclose()
                        raise httpx.ReadError("connection dropped")

        return Broken()


async def test_the_event_stream_resumes_after_a_drop_without_gaps_or_duplicates(gateway, world):
    async with AsyncClient(gateway.url, world.developer.secret) as dev:
        job_id = (await dev.jobs.train(**_request(world))).id
    await world.bus.publish(TrainingStarted(job_id=job_id, worker="w", total_steps=4))
    transport = DroppingTransport(events=2)
    async with AsyncClient(gateway.url, world.viewer.secret, transport=transport) as client:

        async def follow() -> list:
            return [event async for event in client.jobs.stream(job_id)]

        following = asyncio.create_task(follow())
        for step in (1, 2, 3, 4):
            await world.bus.publish(
                TrainingProgressed(
                    job_id=job_id,
                    step=step,
                    total_steps=4,
                    loss=1.0,
                    learning_rate=1e-3,
                    tokens_per_second=10,
                    eta_seconds=1,
                )
            )
        await world.bus.publish(
            TrainingCompleted(job_id=job_id, adapter_artifact_id="art-y", steps=4, duration_seconds=1)
        )
        events = await asyncio.wait_for(following, 60)
        job = await client.jobs.show(job_id)

    assert [e.id for e in events] == list(range(1, 8))
    assert [e.type for e in events] == ["queued", "started", *["progressed"] * 4, "completed"]
    assert transport.resumed_from[:2] == [None, "2"]
    assert (job.status, job.adapter_artifact_id, job.last_event_id) == ("completed", "art-y", 7)


class SyncDroppingTransport(httpx.BaseTransport):
    """The blocking twin of DroppingTransport."""

    def __init__(self, events: int) -> None:
        self.real = httpx.HTTPTransport()
        self.events = events
        self.resumed_from: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.resumed_from.append(request.headers.get("Last-Event-ID"))
        if len(self.resumed_from) > 1:
            return response
        limit = self.events

        class Broken(httpx.SyncByteStream):
            def __iter__(self):
                seen = 0
                for chunk in response.iter_raw():
                    cut = 0
                    for end in re.finditer(rb"\r?\n\r?\n", chunk):
                        if seen < limit:
                            cut, seen = end.end(), seen + 1
                    yield chunk[:cut] if seen >= limit else chunk
                    if seen >= limit:
                        response.close()
                        raise httpx.ReadError("connection dropped")

        return httpx.Response(response.status_code, headers=response.headers, stream=Broken())


async def test_the_blocking_client_resumes_a_dropped_stream_too(gateway, world):
    async with AsyncClient(gateway.url, world.developer.secret) as dev:
        job_id = (await dev.jobs.train(**_request(world))).id
    await world.bus.publish(TrainingStarted(job_id=job_id, worker="w", total_steps=4))
    await world.bus.publish(
        TrainingProgressed(
            job_id=job_id, step=1, total_steps=4, loss=1.0, learning_rate=1e-3, tokens_per_second=10, eta_seconds=1
        )
    )
    await world.bus.publish(TrainingCompleted(job_id=job_id, adapter_artifact_id="art-z", steps=4, duration_seconds=1))
    transport = SyncDroppingTransport(events=1)

    def follow() -> list[int]:
        with Client(gateway.url, world.viewer.secret, transport=transport) as client:
            return [event.id for event in client.jobs.stream(job_id)]

    assert await asyncio.wait_for(asyncio.to_thread(follow), 60) == [1, 2, 3, 4]
    assert transport.resumed_from[:2] == [None, "1"]


def _request(world) -> dict:
    return {"base_model": world.base_model_name, "dataset": world.chat_dataset, "hyperparameters": {"max_steps": 4}}
