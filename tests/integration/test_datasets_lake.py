"""Dataset tables and SQL over them, written once and run against both stores (a local directory, S3 on moto):
versions and history, reads per version, query limits and refusals, the fixed schema kind, and that a rejected
upload leaves no version behind."""

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from minio import Minio
from modelops_contracts import DatasetSchema
from modelops_gateway.datasets import (
    ARROW_SCHEMAS,
    ConcurrentWrite,
    DatasetFormat,
    DatasetInvalid,
    DatasetNotFound,
    DatasetVersion,
    InvalidDatasetName,
    QueryFailed,
    QueryRejected,
    QueryResultTooLarge,
    QueryTimeout,
    SchemaKindMismatch,
    VersionNotFound,
    describe,
    list_datasets,
    read_rows,
    run_query,
    table_uri,
    validate_upload,
    versions,
    write_version,
)
from modelops_shared.settings import Settings
from modelops_shared.storage.delta import delta_storage_options
from pydantic import SecretStr

SFT, CHAT, PREFERENCE = DatasetSchema.SFT, DatasetSchema.CHAT, DatasetSchema.PREFERENCE

V0 = [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(3)]
V1 = [{"prompt": "late question", "completion": "late answer"}, {"prompt": "last", "completion": "one"}]
CHAT_ROWS = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
PREFERENCE_ROWS = [{"prompt": "Greet", "chosen": "Hello!", "rejected": "No."}]


@pytest.fixture(params=["file", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "file":
        return Settings(object_store_url=(tmp_path / "objects").as_uri())
    s3 = request.getfixturevalue("moto_s3")
    # deltalake does not create buckets; a fresh one per test also keeps tests apart on the shared server.
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    client = Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=False, region=s3.region)
    client.make_bucket(bucket)
    return Settings(
        object_store_url=f"s3://{bucket}/some/prefix",
        s3_endpoint=s3.endpoint,
        s3_access_key=SecretStr(s3.access_key),
        s3_secret_key=SecretStr(s3.secret_key),
        s3_region=s3.region,
        s3_secure=False,
    )


def rows(kind: DatasetSchema, values: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(values, schema=ARROW_SCHEMAS[kind])


@pytest.fixture
def two_versions(settings: Settings) -> tuple[DatasetVersion, DatasetVersion]:
    return (
        write_version(settings, "qa", SFT, rows(SFT, V0), created_by="alice"),
        write_version(settings, "qa", SFT, rows(SFT, V1), created_by="bob"),
    )


def test_each_upload_is_a_new_version(settings: Settings, two_versions: tuple[DatasetVersion, DatasetVersion]) -> None:
    v0, v1 = two_versions

    assert (v0.version, v0.num_rows, v1.version, v1.num_rows) == (0, 3, 1, 5)
    assert (v0.name, v0.schema_kind) == (v1.name, v1.schema_kind) == ("qa", SFT)
    assert v0.uri == v1.uri == table_uri(settings, "qa") == f"{settings.store_url}/datasets/qa"
    assert 0 < v0.size_bytes < v1.size_bytes
    assert describe(settings, "qa") == v1
    assert describe(settings, "qa", version=0) == v0
    # Other readers (the trainer) open the same version with deltalake alone.
    table = DeltaTable(v1.uri, version=0, storage_options=delta_storage_options(settings))
    assert sorted(table.to_pyarrow_table().to_pylist(), key=str) == sorted(V0, key=str)


def test_rows_per_version_oldest_upload_first(settings: Settings, two_versions: object) -> None:
    assert read_rows(settings, "qa", version=0) == V0
    assert read_rows(settings, "qa") == V0 + V1
    assert read_rows(settings, "qa", limit=2, offset=2) == [V0[2], V1[0]]
    assert read_rows(settings, "qa", version=1, limit=0) == []


def test_history_newest_first_with_rows_and_uploader(settings: Settings, two_versions: object) -> None:
    history = versions(settings, "qa")

    assert [(h.version, h.operation, h.rows_added, h.num_rows, h.created_by) for h in history] == [
        (1, "WRITE", 2, 5, "bob"),
        (0, "WRITE", 3, 3, "alice"),
    ]
    assert history[0].timestamp >= history[1].timestamp
    assert history[0].metrics["num_added_rows"] == 2
    assert versions(settings, "qa", limit=1) == history[:1]


def test_datasets_are_listed_by_name_at_their_latest_version(settings: Settings) -> None:
    assert list_datasets(settings) == []

    write_version(settings, "prefs", PREFERENCE, rows(PREFERENCE, PREFERENCE_ROWS))
    write_version(settings, "chat-1", CHAT, rows(CHAT, CHAT_ROWS))
    write_version(settings, "chat-1", CHAT, rows(CHAT, CHAT_ROWS))

    listed = list_datasets(settings)
    assert [(d.name, d.schema_kind, d.version, d.num_rows) for d in listed] == [
        ("chat-1", CHAT, 1, 2),
        ("prefs", PREFERENCE, 0, 1),
    ]
    assert read_rows(settings, "chat-1", version=0) == CHAT_ROWS
    assert read_rows(settings, "prefs") == PREFERENCE_ROWS


def test_the_schema_kind_is_fixed_by_the_first_version(settings: Settings, two_versions: object) -> None:
    with pytest.raises(SchemaKindMismatch, match="holds sft rows; an upload of preference rows") as caught:
        write_version(settings, "qa", PREFERENCE, rows(PREFERENCE, PREFERENCE_ROWS))

    assert (caught.value.status, caught.value.extensions) == (409, {"schema": "sft"})
    assert [h.version for h in versions(settings, "qa")] == [1, 0]


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_rejected_upload_leaves_no_version(settings: Settings, two_versions: object) -> None:
    before = versions(settings, "qa")
    bad = b'{"prompt": "fine", "completion": "row"}\n{"prompt": "", "completion": "bad row"}\n'

    with pytest.raises(DatasetInvalid):
        await validate_upload(chunks(bad), DatasetFormat.JSONL, SFT, max_bytes=1024)
    with pytest.raises(ValueError, match="validate them first"):
        write_version(settings, "qa", SFT, pa.table({"prompt": ["unvalidated"], "completion": [None]}))

    assert versions(settings, "qa") == before
    assert read_rows(settings, "qa") == V0 + V1


async def test_a_rejected_first_upload_leaves_no_dataset(settings: Settings) -> None:
    with pytest.raises(DatasetInvalid):
        await validate_upload(chunks(b"not json\n"), DatasetFormat.JSONL, SFT, max_bytes=1024)

    assert list_datasets(settings) == []
    with pytest.raises(DatasetNotFound):
        describe(settings, "qa")


def test_unknown_datasets_versions_and_bad_names(settings: Settings, two_versions: object) -> None:
    with pytest.raises(DatasetNotFound, match="no dataset 'other'"):
        describe(settings, "other")
    for version in (2, -1):
        with pytest.raises(VersionNotFound, match="its versions are 0 to 1"):
            read_rows(settings, "qa", version=version)
    for name in ("../qa", "QA", "", "a" * 64, ".hidden", "qa/x"):
        with pytest.raises(InvalidDatasetName):
            describe(settings, name)


def test_concurrent_uploads_each_get_their_own_version(settings: Settings, two_versions: object) -> None:
    written: list[DatasetVersion] = []

    def upload(i: int) -> None:
        written.append(write_version(settings, "qa", SFT, rows(SFT, [{"prompt": f"t{i}", "completion": "x"}])))

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(v.version for v in written) == [2, 3, 4, 5]
    assert describe(settings, "qa").num_rows == 5 + 4
    assert [h.num_rows for h in versions(settings, "qa")] == [9, 8, 7, 6, 5, 3]


def race(*uploads: tuple[DatasetSchema, pa.Table], settings: Settings) -> list[DatasetVersion | Exception]:
    """Start every upload to the dataset `race` at the same moment; what each returned or raised."""
    outcomes: list[DatasetVersion | Exception] = [RuntimeError("did not finish")] * len(uploads)
    barrier = threading.Barrier(len(uploads))

    def upload(i: int, kind: DatasetSchema, table: pa.Table) -> None:
        barrier.wait()
        try:
            outcomes[i] = write_version(settings, "race", kind, table)
        except (SchemaKindMismatch, ConcurrentWrite) as error:
            outcomes[i] = error

    threads = [threading.Thread(target=upload, args=(i, *args)) for i, args in enumerate(uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_simultaneous_first_uploads_of_one_kind_all_become_versions(settings: Settings) -> None:
    outcomes = race(*[(SFT, rows(SFT, [{"prompt": f"p{i}", "completion": "c"}])) for i in range(3)], settings=settings)

    assert sorted(o.version for o in outcomes if isinstance(o, DatasetVersion)) == [0, 1, 2]
    assert describe(settings, "race").num_rows == 3


def test_simultaneous_first_uploads_of_two_kinds_keep_one(settings: Settings) -> None:
    outcomes = race((SFT, rows(SFT, V0)), (PREFERENCE, rows(PREFERENCE, PREFERENCE_ROWS)), settings=settings)

    [winner] = [o for o in outcomes if isinstance(o, DatasetVersion)]
    [loser] = [o for o in outcomes if isinstance(o, Exception)]
    assert isinstance(loser, SchemaKindMismatch)
    assert loser.existing is winner.schema_kind
    assert describe(settings, "race") == winner
    assert [h.version for h in versions(settings, "race")] == [0]
    assert len(read_rows(settings, "race")) == winner.num_rows


def test_sql_over_a_version(settings: Settings, two_versions: object) -> None:
    count = "SELECT count(*) AS n FROM dataset"

    first, latest = run_query(settings, "qa", count, version=0), run_query(settings, "qa", count)

    assert (first.version, first.rows) == (0, [{"n": 3}])
    assert (latest.version, latest.rows) == (1, [{"n": 5}])
    grouped = run_query(
        settings, "qa", "WITH t AS (SELECT length(prompt) AS len FROM dataset) SELECT max(len) AS longest FROM t"
    )
    assert grouped.rows == [{"longest": len("late question")}]
    assert [(c.name, c.type) for c in grouped.columns] == [("longest", "BIGINT")]


def test_sql_results_are_json_ready_whatever_their_types(settings: Settings, two_versions: object) -> None:
    sql = (
        "SELECT sum(length(prompt)) AS total, 'nan'::DOUBLE AS nan, '\\xff'::BLOB AS blob, 1.25::DECIMAL(4, 2) AS dec,"
        " INTERVAL 2 DAY AS span, DATE '2026-01-02' AS day, MAP {'k': 1} AS map FROM dataset"
    )

    [row] = run_query(settings, "qa", sql).rows

    assert row == {
        "total": sum(len(r["prompt"]) for r in V0 + V1),
        "nan": None,
        "blob": "/w==",
        "dec": 1.25,
        "span": {"months": 0, "days": 2, "nanoseconds": 0},
        "day": "2026-01-02",
        "map": [["k", 1]],
    }
    json.dumps(row, allow_nan=False)


def test_sql_results_stop_at_the_row_limit(settings: Settings, two_versions: object) -> None:
    capped = run_query(settings, "qa", "SELECT prompt FROM dataset ORDER BY prompt", max_rows=2)
    whole = run_query(settings, "qa", "SELECT prompt FROM dataset ORDER BY prompt", max_rows=5)

    assert (len(capped.rows), capped.truncated) == (2, True)
    assert (len(whole.rows), whole.truncated) == (5, False)
    assert capped.rows == whole.rows[:2]


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE dataset",
        "COPY dataset TO '/tmp/leak.csv'",
        "ATTACH '/tmp/other.duckdb' AS other",
        "INSERT INTO dataset VALUES ('a', 'b')",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "SELECT 1; DROP TABLE dataset",
        "",
    ],
)
def test_only_one_select_statement_is_accepted(settings: Settings, two_versions: object, sql: str) -> None:
    with pytest.raises(QueryRejected) as caught:
        run_query(settings, "qa", sql)

    assert caught.value.status == 400
    assert run_query(settings, "qa", "SELECT count(*) AS n FROM dataset").rows == [{"n": 5}]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM 'http://127.0.0.1:9/data.parquet'",
    ],
)
def test_sql_cannot_reach_files_or_the_network(settings: Settings, two_versions: object, sql: str) -> None:
    with pytest.raises(QueryFailed, match="disabled by configuration"):
        run_query(settings, "qa", sql)


def test_sql_errors_explain_themselves(settings: Settings, two_versions: object) -> None:
    with pytest.raises(QueryFailed, match='Referenced column "answer" not found'):
        run_query(settings, "qa", "SELECT answer FROM dataset")
    with pytest.raises(QueryRejected, match="syntax error"):
        run_query(settings, "qa", "SELEC prompt FROM dataset")


def test_a_result_over_the_byte_limit_is_refused_and_spills_stay_bounded(settings: Settings, two_versions: object):
    huge = "SELECT repeat('x', 100000) AS padding FROM range(100)"  # 10 MB in 100 rows, under the row limit
    with pytest.raises(QueryResultTooLarge, match="over 1000000 bytes") as refused:
        run_query(settings, "qa", huge, max_bytes=1_000_000)
    assert (refused.value.status, refused.value.slug) == (422, "query-result-too-large")
    assert len(run_query(settings, "qa", huge, max_bytes=20_000_000).rows) == 100
    spills = run_query(settings, "qa", "SELECT current_setting('max_temp_directory_size') AS cap").rows
    assert spills == [{"cap": "953.6 MiB"}]  # 1 GB


def test_a_slow_query_is_stopped_at_the_time_limit(settings: Settings, two_versions: object) -> None:
    started = time.monotonic()

    with pytest.raises(QueryTimeout, match=r"longer than 0\.5 s"):
        run_query(settings, "qa", "SELECT count(*) FROM dataset, range(1000000000) a, range(1000) b", timeout_s=0.5)

    assert time.monotonic() - started < 10


def test_an_upload_retried_with_its_token_appends_once(settings: Settings, two_versions: object) -> None:
    """A retry of an upload (the same token: a client's Idempotency-Key) returns the version the first attempt
    wrote, even when both attempts write at the same moment, and the rows are in the table once."""
    table = rows(SFT, [{"prompt": "once", "completion": "only"}])
    first = write_version(settings, "qa", SFT, table, upload="token-1")
    again = write_version(settings, "qa", SFT, table, upload="token-1")
    assert (again.version, again.num_rows) == (first.version, first.num_rows) == (2, 6)
    raced: list[DatasetVersion] = []
    barrier = threading.Barrier(2)

    def upload() -> None:
        barrier.wait()
        raced.append(write_version(settings, "qa", SFT, table, upload="token-2"))

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [v.version for v in raced] == [3, 3]
    assert describe(settings, "qa").num_rows == 7
    on_create = rows(SFT, [{"prompt": "new", "completion": "table"}])
    created = write_version(settings, "fresh", SFT, on_create, upload="token-3")
    assert write_version(settings, "fresh", SFT, on_create, upload="token-3").version == created.version == 0
