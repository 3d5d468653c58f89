"""Read-only SQL over one dataset version: DuckDB on the version's Arrow dataset, exposed as the table `dataset`,
with row, time and memory limits and no access to files, the network, extensions or settings."""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import threading
import time
from datetime import date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
from modelops_shared.settings import Settings
from pydantic import BaseModel, Field

from .domain import QueryFailed, QueryRejected, QueryResultTooLarge, QueryTimeout
from .lake import dataset_in_upload_order, open_table

TABLE_NAME = "dataset"
DEFAULT_MAX_ROWS = 1000
DEFAULT_MAX_BYTES = 16 * 1024**2
DEFAULT_TIMEOUT_S = 10.0

# Nothing outside the registered dataset is reachable, and one query gets a bounded share of the machine.
_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,  # no file, URL, ATTACH or COPY from SQL
    "python_enable_replacements": False,  # no reaching the caller's Python variables by name
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "memory_limit": "1GB",
    "max_temp_directory_size": "1GB",  # what spills past the memory limit, in the state dir (run_query)
    "threads": 2,
}

# DuckDB errors that describe the user's SQL; their messages are shown. Any other error is logged, not shown.
_USER_ERRORS = (
    duckdb.ProgrammingError,
    duckdb.DataError,
    duckdb.NotSupportedError,
    duckdb.PermissionException,
    duckdb.OutOfMemoryException,
)

log = logging.getLogger(__name__)


class QueryColumn(BaseModel):
    name: str
    type: str = Field(description="DuckDB type, e.g. VARCHAR or BIGINT")


class QueryResult(BaseModel):
    version: int = Field(description="The dataset version queried (the latest one when none was asked for)")
    columns: list[QueryColumn]
    rows: list[dict[str, Any]] = Field(
        description="JSON-ready: timestamps in ISO 8601, blobs in base64, NaN and infinities as null, "
        "HUGEINT and integral decimals as integers, other decimals as floats, intervals as "
        "{months, days, nanoseconds}, maps as [key, value] pairs"
    )
    truncated: bool = Field(description="The query had more rows than `max_rows`; only the first are here")
    elapsed_ms: float


def check_query(sql: str) -> duckdb.Statement:
    """`sql` parsed, if it is exactly one SELECT statement (WITH, VALUES, DESCRIBE and SUMMARIZE parse as one too)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRejected(_message(error)) from None
    if len(statements) != 1:
        raise QueryRejected(f"send exactly one SQL statement, not {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise QueryRejected(f"only SELECT queries are allowed, not {statement.type.name}")
    return statement


def run_query(
    settings: Settings,
    name: str,
    sql: str,
    version: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> QueryResult:
    """Run `sql` over the dataset at `version` (default: the latest) as the table `dataset`; at most `max_rows`
    rows come back. QueryRejected before any I/O for anything but one SELECT; QueryTimeout past `timeout_s` of
    execution; QueryResultTooLarge past `max_bytes` of result; QueryFailed when DuckDB refuses or fails it.
    Blocking: from async code run it in a worker thread."""
    if max_rows < 0 or timeout_s <= 0:
        raise ValueError("max_rows must not be negative and timeout_s must be positive")
    statement = check_query(sql)
    table = open_table(settings, name, version)
    dataset = dataset_in_upload_order(table)
    spill = settings.state_dir / "gateway" / "query-spill"
    spill.mkdir(parents=True, exist_ok=True)
    # lock_configuration last: SET and PRAGMA cannot undo any of the above.
    connection = duckdb.connect(
        ":memory:", config={**_CONFIG, "temp_directory": str(spill), "lock_configuration": True}
    )
    try:
        connection.register(TABLE_NAME, dataset)
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            # The query may end, and the connection close, between the timer firing and this call.
            with contextlib.suppress(duckdb.Error):
                connection.interrupt()

        timer = threading.Timer(timeout_s, stop)
        timer.daemon = True
        started = time.monotonic()
        timer.start()
        try:
            relation = connection.sql(statement)
            assert relation is not None, "a SELECT statement always yields a relation"
            # One row more than asked tells whether there were more.
            result = relation.limit(max_rows + 1).to_arrow_table()
        except duckdb.InterruptException:
            if timed_out.is_set():
                raise QueryTimeout(timeout_s) from None
            raise
        except _USER_ERRORS as error:
            raise QueryFailed(_message(error)) from None
        except duckdb.Error:
            log.exception("query over dataset %s failed", name)
            raise QueryFailed("the query failed inside the engine; the service log has the details") from None
        finally:
            timer.cancel()
        elapsed_ms = (time.monotonic() - started) * 1000
        types = [str(type_) for type_ in relation.types]
        if result.slice(0, max_rows).nbytes > max_bytes:
            raise QueryResultTooLarge(max_bytes)
    finally:
        connection.close()
    return QueryResult(
        version=table.version(),
        columns=[
            QueryColumn(name=column, type=type_) for column, type_ in zip(result.column_names, types, strict=True)
        ],
        rows=[{key: _jsonable(value) for key, value in row.items()} for row in result.slice(0, max_rows).to_pylist()],
        truncated=result.num_rows > max_rows,
        elapsed_ms=round(elapsed_ms, 3),
    )


def _message(error: duckdb.Error) -> str:
    """DuckDB's message: about the SQL only (the summary, then the SQL with a caret or candidate names)."""
    return str(error).strip() or type(error).__name__


def _jsonable(value: Any) -> Any:
    """`value` as what JSON can carry: SQL can produce blobs, decimals, NaN and intervals, which it cannot."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, pa.MonthDayNano):  # an INTERVAL; a tuple, so it must come before the list case
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return str(value)
