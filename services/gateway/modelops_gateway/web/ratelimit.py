"""Per-key rate limits in Redis through `limits`, and the middleware that puts the RateLimit-* headers on every
response to a limited request, errors included."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from modelops_shared.problems import Problem
from redis.asyncio import ConnectionPool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATE_KEY = "rate_limit_headers"
REDIS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Quota:
    """One request counted against a key: whether it fits, and what the RateLimit-* headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # until the oldest counted request leaves the window, freeing a slot

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


class RateLimiter:
    """A moving window per API key. Chosen over a fixed window, which lets a client spend two windows' worth in
    the moments around a boundary, and over the sliding-window counter, which only estimates: a key's window is a
    Redis list of at most `limit` timestamps, small at per-key rates, and Retry-After is exact."""

    def __init__(self, redis_url: str, default: str) -> None:
        # Our own pool, so shutdown can close it (the storage offers no close of its own).
        self._pool = ConnectionPool.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._storage = RedisStorage(
            f"async+{redis_url}",
            implementation="redispy",
            key_prefix="modelops-gateway",
            wrap_exceptions=True,
            connection_pool=self._pool,  # type: ignore[arg-type]  # documented, though **options is typed as scalars
        )
        self._window = MovingWindowRateLimiter(self._storage)
        self.default: RateLimitItem = parse(default)

    async def hit(self, key_id: str, rate: str | None) -> Quota:
        """Count one request of `key_id` under its own `rate`, or the default."""
        item = parse(rate) if rate else self.default
        try:
            allowed = await self._window.hit(item, key_id)
            stats = await self._window.get_window_stats(item, key_id)
        except StorageError:
            # Failing closed: a limit that silently stops holding is a promise to other tenants broken.
            raise Problem(503, "rate-limiter-unavailable", "rate limits cannot be checked; retry shortly") from None
        reset_s = max(0, math.ceil(stats.reset_time - time.time()))
        return Quota(allowed, item.amount, max(0, stats.remaining), reset_s)

    async def ready(self) -> bool:
        return await self._storage.check()

    async def close(self) -> None:
        await self._pool.aclose()


class RateLimitHeaders:
    """ASGI middleware: copies the headers the limiter left in the request state onto the response, whichever
    handler produced it (a route's own response, a proxied one, a problem)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                quota_headers: dict[str, str] = scope.get("state", {}).get(STATE_KEY, {})
                headers = MutableHeaders(scope=message)
                for name, value in quota_headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
