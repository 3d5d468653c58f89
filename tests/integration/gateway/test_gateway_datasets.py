"""Datasets through the gateway on the real stack: uploads in every format and schema kind, versions, rows and SQL per
version, row-level rejections that write nothing, limits, roles, idempotent retries, the registry recording each
version as a `dataset` artifact, and the reconciler announcing a version whose announcement was lost."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import registered
from modelops_contracts import DatasetSchema
from modelops_gateway.datasets import ARROW_SCHEMAS, write_version
from modelops_gateway.datasets.announcer import reconcile

from .test_gateway_auth import assert_problem

ROWS: dict[str, list[dict[str, Any]]] = {
    "sft": [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(3)],
    "chat": [
        {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"hello {i}"}]}
        for i in range(3)
    ],
    "preference": [{"prompt": f"greet {i}", "chosen": f"Hello {i}!", "rejected": f"No {i}."} for i in range(3)],
}
MORE_SFT = [{"prompt": "late question", "completion": "late answer"}, {"prompt": "last", "completion": "one"}]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def encoded(rows: list[dict[str, Any]], fmt: str) -> bytes:
    """The rows as a JSONL, CSV (nested values as JSON text) or Parquet file."""
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()} for row in rows)
        return text.getvalue().encode()
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


async def upload(
    client,
    name: str,
    schema: str,
    rows: list[dict[str, Any]] | None = None,
    *,
    fmt: str = "jsonl",
    content: bytes | None = None,
    idempotency_key: str | None = None,
):
    data = content if content is not None else encoded(rows or [], fmt)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return await client.post(
        "/v1/datasets", data={"name": name, "schema": schema}, files={"file": (f"rows.{fmt}", data)}, headers=headers
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("schema", ["sft", "chat", "preference"])
async def test_each_format_and_schema_kind_becomes_version_0_with_the_same_rows(gateway, keys, fmt, schema):
    name = unique(f"{schema}-{fmt}")
    async with gateway.client(keys["developer"].secret) as dev:
        created = await upload(dev, name, schema, ROWS[schema], fmt=fmt)
        assert created.status_code == 201, created.text
        body = created.json()
        assert {k: body[k] for k in ("name", "version", "schema", "num_rows", "dataset_id")} == {
            "name": name,
            "version": 0,
            "schema": schema,
            "num_rows": 3,
            "dataset_id": f"dataset-{name}-v0",
        }
        assert body["size_bytes"] > 0
        assert body["uri"].endswith(f"/datasets/{name}")
        assert created.headers["Location"] == f"/v1/datasets/{name}?version=0"
        read = (await dev.get(f"/v1/datasets/{name}/rows")).json()
    assert (read["version"], read["rows"]) == (0, ROWS[schema])


async def test_versions_increment_and_rows_queries_and_history_follow_each_version(gateway, keys):
    name = unique("versions")
    developer = keys["developer"]
    async with gateway.client(developer.secret) as dev, gateway.client(keys["viewer"].secret) as view:
        first = (await upload(dev, name, "sft", ROWS["sft"])).json()
        second = await upload(dev, name, "sft", MORE_SFT, fmt="csv")
        assert second.status_code == 201, second.text
        assert (first["version"], second.json()["version"]) == (0, 1)
        assert second.json()["num_rows"] == 5

        assert (await view.get(f"/v1/datasets/{name}")).json()["version"] == 1
        old = (await view.get(f"/v1/datasets/{name}", params={"version": 0})).json()
        assert (old["version"], old["num_rows"], old["dataset_id"]) == (0, 3, f"dataset-{name}-v0")
        assert (await view.get(f"/v1/datasets/{name}/rows", params={"version": 0})).json()["rows"] == ROWS["sft"]
        latest = (await view.get(f"/v1/datasets/{name}/rows", params={"limit": 2, "offset": 2})).json()
        assert (latest["version"], latest["offset"], latest["rows"]) == (1, 2, [ROWS["sft"][2], MORE_SFT[0]])

        history = (await view.get(f"/v1/datasets/{name}/versions")).json()["data"]
        assert [(v["version"], v["rows_added"], v["num_rows"]) for v in history] == [(1, 2, 5), (0, 3, 3)]
        assert {v["created_by"] for v in history} == {developer.name}
        assert [v["dataset_id"] for v in history] == [f"dataset-{name}-v1", f"dataset-{name}-v0"]

        sql = "SELECT count(*) AS n, max(prompt) AS last FROM dataset"
        for version, count in ((0, 3), (1, 5), (None, 5)):
            result = await view.post(f"/v1/datasets/{name}/query", json={"sql": sql, "version": version})
            assert result.status_code == 200, result.text
            assert (result.json()["version"], result.json()["rows"][0]["n"]) == (
                1 if version is None else version,
                count,
            )
        assert result.json()["columns"] == [{"name": "n", "type": "BIGINT"}, {"name": "last", "type": "VARCHAR"}]

        missing = await view.get(f"/v1/datasets/{name}", params={"version": 7})
        assert_problem(missing, 404, "dataset-version-not-found")
        assert_problem(await view.get(f"/v1/datasets/{unique('none')}/rows"), 404, "dataset-not-found")
        assert (await view.get(f"/v1/datasets/{name}/rows", params={"limit": 1001})).status_code == 422


async def test_the_list_pages_by_name(gateway, keys):
    prefix = unique("listed")
    names = [f"{prefix}-{i}" for i in range(3)]
    async with gateway.client(keys["developer"].secret) as dev:
        for name in names:
            assert (await upload(dev, name, "sft", ROWS["sft"])).status_code == 201
        cursor, seen = f"{prefix}-", []
        while True:
            page = (await dev.get("/v1/datasets", params={"cursor": cursor, "limit": 2})).json()
            seen += [d["name"] for d in page["data"] if d["name"].startswith(prefix)]
            if page["next_cursor"] is None or not page["data"][-1]["name"].startswith(prefix):
                break
            cursor = page["next_cursor"]
    assert seen == names


async def test_a_bad_upload_is_a_row_level_422_and_leaves_no_version(gateway, keys):
    name = unique("rejected")
    bad_rows = [
        ROWS["chat"][0],
        {"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "user", "content": "no answer"}]},
    ]
    async with gateway.client(keys["developer"].secret) as dev:
        assert (await upload(dev, name, "chat", ROWS["chat"])).status_code == 201
        rejected = await upload(dev, name, "chat", bad_rows)
        problem = assert_problem(rejected, 422, "dataset-invalid")
        assert (problem["rows_checked"], problem["invalid_rows"], problem["error_count"]) == (3, 2, 2)
        assert problem["errors"][0]["line"] == 2
        assert problem["errors"][0]["field"] == "messages[0].role"
        assert problem["errors"][1] == {
            "line": 3,
            "field": "messages",
            "message": "needs at least one assistant message to learn from",
        }

        many = "".join('{"prompt": 1}\n' for _ in range(150)).encode()
        capped = assert_problem(await upload(dev, unique("capped"), "sft", content=many), 422, "dataset-invalid")
        assert (len(capped["errors"]), capped["invalid_rows"]) == (100, 150)
        assert capped["error_count"] > 100

        history = (await dev.get(f"/v1/datasets/{name}/versions")).json()["data"]
        assert [v["version"] for v in history] == [0]
        assert (await dev.get(f"/v1/datasets/{name}")).json()["num_rows"] == 3
        new_name = unique("never")
        assert_problem(await upload(dev, new_name, "sft", content=b'{"prompt": ""}\n'), 422, "dataset-invalid")
        assert_problem(await dev.get(f"/v1/datasets/{new_name}"), 404, "dataset-not-found")


async def test_bad_requests_get_their_problems(gateway, keys):
    name = unique("kinds")
    settings = gateway.state.settings
    async with gateway.client(keys["developer"].secret) as dev:
        assert (await upload(dev, name, "sft", ROWS["sft"])).status_code == 201
        assert_problem(await upload(dev, name, "preference", ROWS["preference"]), 409, "dataset-schema-mismatch")
        assert_problem(await upload(dev, name, "sft", ROWS["sft"], fmt="txt"), 415, "unsupported-dataset-format")
        assert_problem(await upload(dev, "Bad Name", "sft", ROWS["sft"]), 422, "validation-error")
        assert_problem(await upload(dev, unique("kind"), "poetry", ROWS["sft"]), 422, "validation-error")
        fields_only = b'--b\r\nContent-Disposition: form-data; name="schema"\r\n\r\nsft\r\n--b--\r\n'
        no_file = await dev.post(
            "/v1/datasets", content=fields_only, headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert_problem(no_file, 422, "no-file")
        not_multipart = await dev.post("/v1/datasets", json={"name": unique("json"), "schema": "sft"})
        assert_problem(not_multipart, 415, "unsupported-media-type")
        two_files = await dev.post(
            "/v1/datasets",
            data={"name": unique("two"), "schema": "sft"},
            files=[("file", ("a.jsonl", encoded(ROWS["sft"], "jsonl"))), ("file", ("b.jsonl", b"{}"))],
        )
        assert_problem(two_files, 422, "unexpected-file")

        limit, settings.gateway_max_dataset_bytes = settings.gateway_max_dataset_bytes, 1024
        try:
            big = [{"prompt": "x" * 600, "completion": "y" * 600}]
            assert_problem(await upload(dev, unique("big"), "sft", big), 413, "upload-too-large")
        finally:
            settings.gateway_max_dataset_bytes = limit


async def test_queries_are_read_only_and_limited(gateway, keys):
    name = unique("query")
    settings = gateway.state.settings
    async with gateway.client(keys["developer"].secret) as dev, gateway.client(keys["viewer"].secret) as view:
        assert (await upload(dev, name, "sft", ROWS["sft"])).status_code == 201
        path = f"/v1/datasets/{name}/query"

        for sql in ("DROP TABLE dataset", "SELECT 1; SELECT 2", "INSERT INTO dataset VALUES ('a', 'b')", "SELEC"):
            assert_problem(await view.post(path, json={"sql": sql}), 400, "query-rejected")
        for sql in ("SELECT * FROM read_csv('/etc/passwd')", "SELECT nope FROM dataset"):
            assert_problem(await view.post(path, json={"sql": sql}), 400, "query-failed")
        assert_problem(await view.post(path, json={"sql": "SELECT 1", "version": 3}), 404, "dataset-version-not-found")

        rows, settings.gateway_query_max_rows = settings.gateway_query_max_rows, 2
        timeout, settings.gateway_query_timeout_s = settings.gateway_query_timeout_s, 0.2
        try:
            capped = (await view.post(path, json={"sql": "SELECT * FROM dataset"})).json()
            assert (len(capped["rows"]), capped["truncated"]) == (2, True)
            endless = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"
            stopped = assert_problem(await view.post(path, json={"sql": endless}), 400, "query-timeout")
            assert stopped["timeout_s"] == 0.2
        finally:
            settings.gateway_query_max_rows, settings.gateway_query_timeout_s = rows, timeout


async def test_a_viewer_reads_but_cannot_upload(gateway, keys):
    name = unique("roles")
    async with gateway.client(keys["developer"].secret) as dev:
        assert (await upload(dev, name, "sft", ROWS["sft"])).status_code == 201
    async with gateway.client(keys["viewer"].secret) as view:
        assert_problem(await upload(view, unique("viewer"), "sft", ROWS["sft"]), 403, "insufficient-role")
        for path in (f"/v1/datasets/{name}", f"/v1/datasets/{name}/versions", f"/v1/datasets/{name}/rows"):
            assert (await view.get(path)).status_code == 200, path
        assert (await view.post(f"/v1/datasets/{name}/query", json={"sql": "SELECT 1"})).status_code == 200
    async with gateway.client() as anonymous:
        assert_problem(await anonymous.get("/v1/datasets"), 401, "unauthorized")
        assert_problem(await upload(anonymous, name, "sft", ROWS["sft"]), 401, "unauthorized")


async def test_a_retried_upload_returns_the_first_version_and_writes_once(gateway, keys):
    name, key = unique("retried"), uuid.uuid4().hex
    async with gateway.client(keys["developer"].secret) as dev:
        first = await upload(dev, name, "sft", ROWS["sft"], idempotency_key=key)
        assert first.status_code == 201, first.text
        again = await upload(dev, name, "sft", ROWS["sft"], idempotency_key=key)
        assert (again.status_code, again.json()) == (201, first.json())
        assert again.headers["Idempotency-Replayed"] == "true"
        assert again.headers["Location"] == first.headers["Location"]

        # Side by side: one writes; the others are told it is still running (409, Retry-After) or get its answer.
        concurrent = await asyncio.gather(
            *(upload(dev, name, "sft", MORE_SFT, idempotency_key=f"{key}-2") for _ in range(3))
        )
        assert {r.status_code for r in concurrent} <= {201, 409}
        for busy in (r for r in concurrent if r.status_code == 409):
            assert_problem(busy, 409, "idempotency-key-in-use")
            assert busy.headers["Retry-After"]
        retried = await upload(dev, name, "sft", MORE_SFT, idempotency_key=f"{key}-2")
        assert {r.json()["version"] for r in [*concurrent, retried] if r.status_code == 201} == {1}

        other_content = await upload(dev, name, "sft", MORE_SFT, idempotency_key=key)
        assert_problem(other_content, 422, "idempotency-key-reused")
        history = (await dev.get(f"/v1/datasets/{name}/versions")).json()["data"]
    assert [v["version"] for v in history] == [1, 0]


async def test_an_upload_whose_answer_was_lost_is_not_appended_again_by_its_retry(gateway, keys, monkeypatch):
    """The rows were committed to the table, then recording the version failed (the database went away): the retry
    with the same Idempotency-Key finds the version its first attempt wrote instead of appending the rows again."""
    from modelops_gateway.datasets import api as datasets_api

    real_announce = datasets_api.announce

    async def lost(*args, **kwargs):
        monkeypatch.setattr(datasets_api, "announce", real_announce)  # once
        raise ConnectionResetError("the database went away")

    monkeypatch.setattr(datasets_api, "announce", lost)
    name, key = unique("lost"), uuid.uuid4().hex
    async with gateway.client(keys["developer"].secret) as dev:
        failed = await upload(dev, name, "sft", ROWS["sft"], idempotency_key=key)
        assert failed.status_code == 500
        retried = await upload(dev, name, "sft", ROWS["sft"], idempotency_key=key)
        assert retried.status_code == 201, retried.text
        assert (retried.json()["version"], retried.json()["num_rows"]) == (0, len(ROWS["sft"]))
        history = (await dev.get(f"/v1/datasets/{name}/versions")).json()["data"]
    assert [v["version"] for v in history] == [0]


async def test_the_registry_records_each_version_as_a_dataset_artifact(gateway, keys):
    name = unique("registered")
    developer = keys["developer"]
    async with gateway.client(developer.secret) as dev, gateway.client(keys["viewer"].secret) as view:
        await upload(dev, name, "preference", ROWS["preference"])
        created = (await upload(dev, name, "preference", ROWS["preference"][:1], fmt="parquet")).json()
        artifact = await registered(view, created["dataset_id"])
        first = await registered(view, f"dataset-{name}-v0")
    assert (artifact["kind"], artifact["name"], artifact["version"], artifact["stage"]) == ("dataset", name, "1", "dev")
    assert (artifact["created_by"], artifact["uri"], artifact["size"]) == (
        developer.name,
        created["uri"],
        created["size_bytes"],
    )
    assert artifact["metadata"] == {"schema": "preference", "num_rows": 4}
    assert first["metadata"]["num_rows"] == 3


async def test_a_version_committed_without_its_event_is_announced_once_by_the_reconciler(gateway, keys):
    # As if the gateway died between the Delta commit and the outbox transaction: a version, no announcement.
    name = unique("orphan")
    rows = pa.Table.from_pylist(ROWS["sft"], schema=ARROW_SCHEMAS[DatasetSchema.SFT])
    await asyncio.to_thread(write_version, gateway.settings, name, DatasetSchema.SFT, rows, created_by="crashed-dev")
    runtime = gateway.state.runtime
    await reconcile(runtime.pool, runtime.bus, gateway.settings)
    await reconcile(runtime.pool, runtime.bus, gateway.settings)
    async with gateway.client(keys["viewer"].secret) as view:
        artifact = await registered(view, f"dataset-{name}-v0")
    assert (artifact["kind"], artifact["name"], artifact["created_by"]) == ("dataset", name, "crashed-dev")
    announced = await runtime.pool.fetchval("SELECT count(*) FROM dataset_versions WHERE name = $1", name)
    assert announced == 1


async def test_a_dataset_from_before_owners_belongs_to_its_first_uploader(gateway, keys):
    """Written before owners were recorded (straight to the table here): its version 0's commit names the uploader,
    who alone (with admins) may add to it; one whose commit names nobody is an admin's."""
    first, other = keys["developer"], await gateway.keys.make("developer")
    table = pa.Table.from_pylist(ROWS["sft"], schema=ARROW_SCHEMAS[DatasetSchema.SFT])
    named, anonymous = unique("legacy"), unique("legacy-anon")
    await asyncio.to_thread(write_version, gateway.settings, named, DatasetSchema.SFT, table, created_by=first.name)
    await asyncio.to_thread(write_version, gateway.settings, anonymous, DatasetSchema.SFT, table)
    async with gateway.client(other.secret) as intruder, gateway.client(first.secret) as owner:
        assert_problem(await upload(intruder, named, "sft", MORE_SFT), 403, "not-the-owner")
        assert (await upload(owner, named, "sft", MORE_SFT)).status_code == 201
        assert_problem(await upload(owner, anonymous, "sft", MORE_SFT), 403, "not-the-owner")
    async with gateway.client(gateway.admin_key) as admin:
        assert (await upload(admin, anonymous, "sft", MORE_SFT)).status_code == 201
