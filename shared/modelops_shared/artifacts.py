"""Fetch a registered artifact and verify it before anything loads it.

An id or a name is resolved through the registry's HTTP API (a name means the latest registered artifact of that
kind and name); revoked artifacts are refused; the DSSE bundle must verify with the registry's served public key of
the bundle's signer (or, pinned from configuration, a trusted key, never fetched from the server being verified); the
registry's file list must equal the signed manifest; and every file is re-hashed against
the signed digest as it is downloaded. Files land in a local cache keyed by the artifact's digest.

A cached copy is not downloaded again: the bundle and manifest are verified as for any fetch (small), and the files
are compared by size and modification time with what they were when last hashed (a stamp beside the cache), so a
second job or deployment on a 500 MB base model does not re-read it. A copy whose stamp differs is re-hashed in full,
and dropped and downloaded again if a byte changed. (Whoever can write the cache and reset modification times can
also replace the code that loads it; the stamp guards against accidents and stale copies, not against that.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httpx
from modelops_contracts import ArtifactKind, Stage

from .service_tokens import ServiceIdentity
from .settings import Settings
from .signing import SignatureError, key_id_of, load_public_key, pem_blocks, verify

PAGE_LIMIT = 500
STAMPS = ".verified"  # beside the cached copies: each copy's folder holds exactly the signed files
_CHUNK = 1024 * 1024


class ArtifactError(Exception):
    """The artifact cannot be used; the message says why."""


class ArtifactNotFound(ArtifactError):
    """The registry knows no artifact of that id, or none of that kind and name."""


class ArtifactUnavailable(ArtifactError):
    """The artifact exists but may not be loaded: not (yet) registered, rejected, revoked, or of another kind."""

    def __init__(self, message: str, *, rejected: bool = False) -> None:
        super().__init__(message)
        self.rejected = rejected


class ArtifactVerificationError(ArtifactError):
    """A signature, the signed manifest or a file's bytes do not check out."""


@dataclass(frozen=True)
class VerifiedArtifact:
    """A verified local copy: `path` holds exactly the signed files."""

    id: str
    kind: str
    name: str
    version: str
    digest: str
    path: Path
    record: dict[str, Any]
    statement: dict[str, Any]


class ArtifactClient:
    """A small registry client for loaders (trainer, inference); use as an async context manager."""

    def __init__(
        self,
        registry_url: str,
        cache_dir: Path,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        trusted_keys: Sequence[str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        """`trusted_keys` (PEM public keys) pins the signers: then the registry's own key list is never asked. `auth`
        proves to the registry who calls (a service token)."""
        self.cache_dir = cache_dir
        self._trusted = (
            None if trusted_keys is None else {key_id_of(load_public_key(pem)[0]): pem for pem in trusted_keys}
        )
        # Public: a service's other registry reads (deployments to restore, revocations) share its connections and auth.
        self.http = httpx.AsyncClient(
            base_url=registry_url.rstrip("/"), timeout=timeout, transport=transport, auth=auth
        )

    @classmethod
    def from_settings(cls, settings: Settings, cache_dir: Path) -> ArtifactClient:
        """The client of the service `settings` describe, signing its calls with that service's key."""
        keys_file = settings.registry_trusted_keys_file
        return cls(
            settings.registry_url,
            cache_dir,
            trusted_keys=pem_blocks(keys_file.read_text()) if keys_file else None,
            auth=ServiceIdentity.from_settings(settings).auth("registry"),
        )

    async def __aenter__(self) -> ArtifactClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def resolve(self, ref: str, kind: ArtifactKind, *, also: tuple[ArtifactKind, ...] = ()) -> dict[str, Any]:
        """The registry's record of `ref`: the artifact with that id (of `kind`, or one of `also`), else the latest of
        `kind` with that name."""
        response = await self.http.get(f"/v1/artifacts/{ref}")
        if response.status_code == 200:
            record = cast(dict[str, Any], response.json())
            if record["kind"] not in {kind.value, *(other.value for other in also)}:
                raise ArtifactUnavailable(f"artifact {ref} is a {record['kind']}, not a {kind.value}")
            return record
        if response.status_code != 404:
            raise ArtifactError(f"registry answered {response.status_code} for {ref}: {response.text[:200]}")
        problem = response.json()
        if problem.get("submission_status"):
            raise ArtifactUnavailable(
                f"artifact {ref} is {problem['submission_status']}"
                + (f": {problem['reason']}" if problem.get("reason") else ""),
                rejected=problem["submission_status"] == "rejected",
            )
        named = await self.list_artifacts(kind, name=ref)
        if not named:
            raise ArtifactNotFound(f"no {kind.value} with id or name {ref!r}")
        return max(named, key=lambda record: datetime.fromisoformat(record["created_at"]))

    async def wait_registered(self, ref: str, kind: ArtifactKind, timeout_s: float) -> dict[str, Any]:
        """The record of `ref` once the registry has registered it; ArtifactUnavailable at once if it rejected it,
        TimeoutError after `timeout_s` (a submission still pending, a registry down all along)."""
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    return await self.resolve(ref, kind)
                except ArtifactUnavailable as error:
                    if error.rejected:
                        raise
                except (ArtifactError, httpx.TransportError):
                    pass  # not submitted yet, or the registry is (re)starting
                await asyncio.sleep(0.5)

    async def list_artifacts(self, kind: ArtifactKind, *, name: str | None = None) -> list[dict[str, Any]]:
        """Every registered artifact of `kind` (and `name`), following the registry's pages."""
        records: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"kind": kind.value, "limit": PAGE_LIMIT}
        if name is not None:
            params["name"] = name
        while True:
            page = await self._get_json("/v1/artifacts", params=params)
            records.extend(page["data"])
            if not page["next_cursor"]:
                return records
            params["cursor"] = page["next_cursor"]

    async def find_version(self, kind: ArtifactKind, name: str, version: str) -> dict[str, Any] | None:
        """The artifact of `kind` and `name` registered as `version`, or None."""
        return next((r for r in await self.list_artifacts(kind, name=name) if r["version"] == version), None)

    async def fetch(
        self, ref: str, kind: ArtifactKind = ArtifactKind.BASE_MODEL, *, also: tuple[ArtifactKind, ...] = ()
    ) -> VerifiedArtifact:
        """Resolve, verify and download (or re-verify the cached copy of) an artifact; ArtifactError when unusable."""
        record = await self.resolve(ref, kind, also=also)
        artifact_id = record["id"]
        if record["stage"] == Stage.REVOKED.value:
            raise ArtifactUnavailable(f"{kind.value} {artifact_id} is revoked")
        if not record.get("bundle_uri"):
            raise ArtifactUnavailable(f"{kind.value} {artifact_id} is recorded but not signed")
        statement = await self._verified_statement(record)
        signed = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
        listed = {f["path"]: f["sha256"] for f in await self._get_json(f"/v1/artifacts/{artifact_id}/files")}
        if signed != listed:
            raise ArtifactVerificationError(
                f"the registry's file list of {artifact_id} differs from its signed manifest"
            )
        for path in signed:
            _check_relative(path)
        target = self.cache_dir / record["digest"]
        stamp = self.cache_dir / STAMPS / f"{record['digest']}.json"
        if await asyncio.to_thread(target.is_dir):
            if await asyncio.to_thread(_unchanged, target, signed, stamp):
                return _verified(record, target, statement)
            problem = await asyncio.to_thread(_cached_problem, target, signed)
            if problem is None:
                await asyncio.to_thread(_write_stamp, target, signed, stamp)
                return _verified(record, target, statement)
            # A cached copy that no longer matches (disk corruption, tampering) is dropped and fetched again.
            await asyncio.to_thread(shutil.rmtree, target, True)
        await self._download(artifact_id, signed, target)
        await asyncio.to_thread(_write_stamp, target, signed, stamp)
        return _verified(record, target, statement)

    async def _verified_statement(self, record: dict[str, Any]) -> dict[str, Any]:
        artifact_id = record["id"]
        bundle = await self._get_json(f"/v1/artifacts/{artifact_id}/bundle")
        pem = await self._signer_pem(record["key_id"])
        if pem is None:
            trusted = "is not among the trusted keys" if self._trusted is not None else "the registry does not serve"
            raise ArtifactVerificationError(f"{artifact_id} is signed by key {record['key_id']}, which {trusted}")
        try:
            statement = verify(bundle, pem)
            payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
        except SignatureError as error:
            raise ArtifactVerificationError(f"the signature of {artifact_id} does not verify: {error}") from None
        if hashlib.sha256(payload).hexdigest() != record["digest"]:
            raise ArtifactVerificationError(f"the signed manifest of {artifact_id} is not the one its digest names")
        if statement["predicate"].get("artifact_id") != artifact_id:
            raise ArtifactVerificationError(f"the signed manifest names another artifact than {artifact_id}")
        return statement

    async def _signer_pem(self, key_id: str) -> str | None:
        if self._trusted is not None:
            return self._trusted.get(key_id)
        keys = await self._get_json("/v1/keys")
        return next((key["pem"] for key in keys if key["key_id"] == key_id), None)

    async def _download(self, artifact_id: str, signed: dict[str, str], target: Path) -> None:
        staging = self.cache_dir / f".{target.name}.{uuid.uuid4().hex}"
        try:
            for path, sha256 in signed.items():
                destination = staging / path
                await asyncio.to_thread(destination.parent.mkdir, parents=True, exist_ok=True)
                digest = await self._download_file(f"/v1/artifacts/{artifact_id}/files/{path}", destination)
                if digest != sha256:
                    raise ArtifactVerificationError(f"{artifact_id}/{path}: sha256 {digest} != signed {sha256}")
            await asyncio.to_thread(_install, staging, target)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _download_file(self, url: str, destination: Path) -> str:
        hasher = hashlib.sha256()
        async with self.http.stream("GET", url) as response:
            if response.status_code != 200:
                raise ArtifactError(f"registry answered {response.status_code} for {url}")
            file = await asyncio.to_thread(destination.open, "wb")
            try:
                async for chunk in response.aiter_bytes(_CHUNK):
                    hasher.update(chunk)
                    await asyncio.to_thread(file.write, chunk)
            finally:
                file.close()
        return hasher.hexdigest()

    async def _get_json(self, url: str, params: dict[str, str | int] | None = None) -> Any:
        response = await self.http.get(url, params=params)
        if response.status_code != 200:
            raise ArtifactError(f"registry answered {response.status_code} for {url}: {response.text[:200]}")
        return response.json()


def _key_id(pem: str) -> str:
    return key_id_of(load_public_key(pem)[0])


def _verified(record: dict[str, Any], path: Path, statement: dict[str, Any]) -> VerifiedArtifact:
    return VerifiedArtifact(
        id=record["id"],
        kind=record["kind"],
        name=record["name"],
        version=record["version"],
        digest=record["digest"],
        path=path,
        record=record,
        statement=statement,
    )


def _install(staging: Path, target: Path) -> None:
    try:
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():
            raise
        # Another fetch of the same artifact finished first; its copy was verified the same way.


def _check_relative(path: str) -> None:
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ArtifactVerificationError(f"manifest path {path!r} is not a plain relative path")


def _cached_problem(root: Path, signed: dict[str, str]) -> str | None:
    """Why the cached copy differs from the signed files (missing, extra or altered), or None."""
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    if present != set(signed):
        return "the cached files are not the signed ones"
    for path, sha256 in signed.items():
        with (root / path).open("rb") as file:
            if hashlib.file_digest(file, "sha256").hexdigest() != sha256:
                return f"{path} changed in the cache"
    return None


def _file_stats(root: Path, signed: dict[str, str]) -> dict[str, list[int]] | None:
    """Size and modification time of each signed file, or None when the copy holds other files than the signed ones."""
    present = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    if present.keys() != signed.keys():
        return None
    return {path: [(stat := file.stat()).st_size, stat.st_mtime_ns] for path, file in sorted(present.items())}


def _unchanged(root: Path, signed: dict[str, str], stamp: Path) -> bool:
    """Whether the copy is as it was when its files were last hashed against these signed digests."""
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return bool(recorded.get("signed") == signed and recorded.get("files") == _file_stats(root, signed))


def _write_stamp(root: Path, signed: dict[str, str], stamp: Path) -> None:
    stamp.parent.mkdir(parents=True, exist_ok=True)
    partial = stamp.with_name(f".{stamp.name}.{uuid.uuid4().hex}")
    partial.write_text(json.dumps({"signed": signed, "files": _file_stats(root, signed)}))
    os.replace(partial, stamp)
