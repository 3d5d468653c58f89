"""The registry's answers the gateway's checks read before accepting a command: artifacts by kind and name, one
artifact by id, and the governance policy. Listings and the policy are kept for a while (`ttl_s`); one artifact by
id is always asked afresh, for the checks whose answer turns on its current stage."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from typing import Any

from modelops_contracts import ArtifactKind
from modelops_shared.errors import Invalid, NotFound

from .upstream import Upstream

PAGE_LIMIT = 500
# Only a string that can be an artifact id is looked up as one: a name may hold `/`, which a path cannot.
ARTIFACT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


_NOT_A = {ArtifactKind.BASE_MODEL: "not-a-base-model", ArtifactKind.ADAPTER: "not-an-adapter"}


class ArtifactReferenceNotFound(NotFound):
    """A base model or adapter the registry has not registered."""

    slug = "artifact-not-found"


class WrongArtifactKind(Invalid):
    """A registered artifact of another kind than the field asks for; `slug=` says which (not-a-base-model, …)."""


class RegistryLookups:
    """The registry's listings of artifacts by kind and name, kept for `ttl_s` while not empty: a burst of jobs naming
    the same base model and dataset asks the registry once per interval (the jobs that find no listing kept share the
    read under way). An empty listing is never kept, and a kept one that lacks the version asked for is read again, so
    what was just registered is found at once; what was revoked meanwhile may be accepted for up to `ttl_s`, and the
    trainer, which refuses revoked artifacts, then fails the job."""

    MAX_KEPT = 1024
    # Listings read at once; the others wait their turn. The registry answers on one event loop, where more would
    # only queue, while every connection more costs httpx's pool on every request (it scans them all, squared).
    READS_AT_ONCE = 8

    def __init__(self, registry: Upstream, ttl_s: float) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._kept: dict[tuple[ArtifactKind, str], tuple[float, list[dict[str, Any]]]] = {}
        self._reading: dict[tuple[ArtifactKind, str], asyncio.Task[list[dict[str, Any]]]] = {}
        self._reads = asyncio.Semaphore(self.READS_AT_ONCE)
        self._policy: tuple[float, dict[str, Any]] | None = None

    async def registered(self, kind: ArtifactKind, name: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        """Every registered artifact of `kind` named `name`, across the registry's pages; `fresh`: read anew, by this
        call alone."""
        key = (kind, name)
        kept = self._kept.get(key)
        if kept and kept[0] > time.monotonic() and not fresh:
            return kept[1]
        if fresh or self.ttl_s <= 0:
            return await self._read(key)
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.create_task(self._read(key))
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        # Shielded: a caller that gives up leaves the read to the others. Like an empty listing kept, an empty one
        # shared is read again: it may predate what the caller has just registered.
        return await asyncio.shield(reading) or await self._read(key)

    async def _read(self, key: tuple[ArtifactKind, str]) -> list[dict[str, Any]]:
        async with self._reads:
            now = time.monotonic()
            records = await _registered(self.registry, *key)
        if records and self.ttl_s > 0:
            if len(self._kept) >= self.MAX_KEPT:
                self._kept = {kept: entry for kept, entry in self._kept.items() if entry[0] > now}
            self._kept[key] = (now + self.ttl_s, records)
        return records

    async def artifact(self, artifact_id: str) -> dict[str, Any] | None:
        """The registered artifact with this id, as the registry has it now; None when it has none (registered)."""
        response = await self.registry.request("GET", f"/v1/artifacts/{artifact_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.registry.failure(response.status_code)
        record: dict[str, Any] = response.json()
        return record

    async def resolve(
        self, kind: ArtifactKind, ref: str, param: str, *, also: tuple[ArtifactKind, ...] = ()
    ) -> dict[str, Any]:
        """The artifact with id `ref`, else the latest of `kind` named `ref`, as the registry has it now; a problem
        naming `param` when there is none, or it is of another kind than `kind` (or `also`)."""
        record = await self.artifact(ref) if ARTIFACT_ID.fullmatch(ref) else None
        if record is None:
            named = await self.registered(kind, ref, fresh=True)
            if named:
                latest = max(named, key=lambda found: datetime.fromisoformat(found["created_at"]))
                record = await self.artifact(latest["id"])  # its stage now, not the listing's
        if record is None:
            raise ArtifactReferenceNotFound(f"{param}: no registered {kind.value} {ref!r}", param=param)
        if record["kind"] not in {kind.value, *(other.value for other in also)}:
            raise WrongArtifactKind(
                f"{param}: {record['id']} is a {record['kind']}, not a {kind.value}",
                slug=_NOT_A.get(kind, f"not-a-{kind.value.replace('_', '-')}"),
                param=param,
            )
        return record

    async def policy(self) -> dict[str, Any]:
        """The registry's governance policy (`GET /v1/policy`), kept for `ttl_s`."""
        now = time.monotonic()
        if self._policy is None or self._policy[0] <= now:
            self._policy = (now + self.ttl_s, await self.registry.json_of("/v1/policy"))
        return self._policy[1]


async def _registered(registry: Upstream, kind: ArtifactKind, name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    params = {"kind": kind.value, "name": name, "limit": str(PAGE_LIMIT)}
    while True:
        response = await registry.request("GET", "/v1/artifacts", params=params)
        if response.status_code != 200:
            raise registry.failure(response.status_code)
        page = response.json()
        records.extend(page["data"])
        if not page["next_cursor"]:
            return records
        params["cursor"] = page["next_cursor"]
