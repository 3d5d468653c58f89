"""Which handler errors are outages (handed back to the broker, never dead-lettered) and which are the message's."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from modelops_shared.bus.consumer import PermanentError, handler_retries, is_outage
from modelops_shared.settings import Settings


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("too many clients"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("pool is closing"),
        KafkaConnectionError(),
        httpx.ConnectError("registry unreachable"),
    ],
)
def test_infrastructure_errors_are_outages(error: BaseException) -> None:
    assert is_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug"),
        ValueError("bad payload"),
        PermanentError("refused"),
        FileNotFoundError("missing file"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.UndefinedTableError("relation does not exist"),
        asyncpg.DataError("invalid input for query argument $1: 2**70 (value out of int64 range)"),
        httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol."),
        httpx.HTTPStatusError("404", request=httpx.Request("GET", "http://x"), response=httpx.Response(404)),
    ],
)
def test_errors_of_the_message_are_not(error: BaseException) -> None:
    assert not is_outage(error)


async def test_a_cancelled_handler_is_not_retried() -> None:
    attempts = 0

    async def handle_until_cancelled() -> None:
        nonlocal attempts
        async for attempt in handler_retries(Settings(consumer_max_retries=3, consumer_retry_backoff_s=5)):
            with attempt:
                attempts += 1
                raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await handle_until_cancelled()
    assert attempts == 1
