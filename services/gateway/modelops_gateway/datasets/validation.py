"""Upload validation: spool the upload, parse JSONL, CSV or Parquet row by row, check every row against its schema
kind, and return the valid rows as an Arrow table with the kind's fixed schema, or a row-level report of what is
wrong. The rules of each kind: the gateway README, "Dataset tables"."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import PurePosixPath
from typing import IO, Annotated, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from modelops_contracts import DatasetSchema
from modelops_contracts.routing import LABEL_PATTERN
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from .domain import DatasetError, DecodedTooLarge, UnsupportedFormat, UploadTooLarge

MAX_REPORTED_ERRORS = 100
# What a Parquet file may decode to: rows are checked, and the valid ones kept, in memory. Its footer tells the rows
# before any is read; the bytes are counted batch by batch as they decode (the footer's sizes are after dictionary
# encoding, so a column of one long repeated string would slip past them).
MAX_DECODED_ROWS = 10_000_000
MAX_DECODED_BYTES = 2 * 1024**3
PARQUET_BATCH_ROWS = 256
BATCH_ROWS = 4096
# Uploads up to this size stay in memory; larger ones roll over to a temporary file on disk.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
# The csv module's default (128 KiB per field) is shorter than a long completion or a chat's messages column.
# The limit is process-wide, so it is only ever raised here.
CSV_FIELD_LIMIT = 64 * 1024 * 1024

csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))


class DatasetFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


_EXTENSIONS = {
    ".jsonl": DatasetFormat.JSONL,
    ".ndjson": DatasetFormat.JSONL,
    ".csv": DatasetFormat.CSV,
    ".parquet": DatasetFormat.PARQUET,
    ".pq": DatasetFormat.PARQUET,
}


def format_of(filename: str) -> DatasetFormat:
    """The upload's format from its filename's extension (case-insensitive)."""
    suffix = PurePosixPath(filename).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        accepted = ", ".join(sorted(_EXTENSIONS))
        raise UnsupportedFormat(
            f"cannot tell the format of {filename!r}; name the file with one of {accepted}"
        ) from None


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_string", "must not be empty or only whitespace")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]


class _Row(BaseModel):
    # Strict: a number where text belongs is an error, not a silent conversion.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SftRow(_Row):
    prompt: Text
    completion: Text


class ChatMessage(_Row):
    role: Literal["system", "user", "assistant", "tool"]
    content: Text


class ChatRow(_Row):
    messages: list[ChatMessage] = Field(min_length=1)

    @field_validator("messages")
    @classmethod
    def _has_assistant(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not any(message.role == "assistant" for message in messages):
            raise PydanticCustomError("no_assistant_message", "needs at least one assistant message to learn from")
        return messages


class PreferenceRow(_Row):
    prompt: Text
    chosen: Text
    rejected: Text

    @field_validator("rejected")
    @classmethod
    def _differs_from_chosen(cls, rejected: str, info: ValidationInfo) -> str:
        if info.data.get("chosen") == rejected:
            raise PydanticCustomError("same_as_chosen", "must differ from chosen")
        return rejected


class MultipleChoiceRow(_Row):
    """An evaluation item: a question, its options, and the index of the right one (scored by log-likelihood)."""

    prompt: Text
    choices: list[Text] = Field(min_length=2, max_length=26)
    answer: int = Field(ge=0)

    @field_validator("answer")
    @classmethod
    def _one_of_the_choices(cls, answer: int, info: ValidationInfo) -> int:
        choices = info.data.get("choices")
        if choices is not None and answer >= len(choices):
            raise PydanticCustomError(
                "answer_out_of_range", "must index one of the {count} choices", {"count": len(choices)}
            )
        return answer


class RoutingRow(_Row):
    """A router's training row: a prompt and the target that should answer it."""

    prompt: Text
    target: Annotated[str, Field(pattern=LABEL_PATTERN)]


ROW_MODELS: dict[DatasetSchema, type[_Row]] = {
    DatasetSchema.SFT: SftRow,
    DatasetSchema.CHAT: ChatRow,
    DatasetSchema.PREFERENCE: PreferenceRow,
    DatasetSchema.MULTIPLE_CHOICE: MultipleChoiceRow,
    DatasetSchema.ROUTING: RoutingRow,
}
# CSV columns that hold JSON (a list, a number) rather than text.
CSV_JSON_COLUMNS: dict[DatasetSchema, tuple[str, ...]] = {
    DatasetSchema.CHAT: ("messages",),
    DatasetSchema.MULTIPLE_CHOICE: ("choices", "answer"),
}


def _text_field(name: str) -> pa.Field:
    return pa.field(name, pa.string(), nullable=False)


# Lists name their item field "element", as Delta does: a version read back then has exactly this schema.
_MESSAGES = pa.list_(pa.field("element", pa.struct([_text_field("role"), _text_field("content")]), nullable=False))

ARROW_SCHEMAS: dict[DatasetSchema, pa.Schema] = {
    DatasetSchema.SFT: pa.schema([_text_field("prompt"), _text_field("completion")]),
    DatasetSchema.CHAT: pa.schema([pa.field("messages", _MESSAGES, nullable=False)]),
    DatasetSchema.PREFERENCE: pa.schema([_text_field("prompt"), _text_field("chosen"), _text_field("rejected")]),
    DatasetSchema.MULTIPLE_CHOICE: pa.schema(
        [
            _text_field("prompt"),
            pa.field("choices", pa.list_(pa.field("element", pa.string(), nullable=False)), nullable=False),
            pa.field("answer", pa.int64(), nullable=False),
        ]
    ),
    DatasetSchema.ROUTING: pa.schema([_text_field("prompt"), _text_field("target")]),
}


class RowError(BaseModel):
    line: int | None = Field(
        description="JSONL/CSV: the 1-based line where the row starts; Parquet: the 1-based row number; "
        "null: the file as a whole"
    )
    field: str | None = Field(description="Where in the row, e.g. `messages[1].role`; null: the row as a whole")
    message: str


class ValidationReport(BaseModel):
    errors: list[RowError] = Field(description=f"The first {MAX_REPORTED_ERRORS} errors, in file order")
    error_count: int = Field(description="Every error found; the whole file is always checked")
    rows_checked: int
    invalid_rows: int


class DatasetInvalid(DatasetError):
    """The upload has at least one bad row (or no rows at all); nothing was written."""

    slug = "dataset-invalid"
    status = 422

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(
            f"{report.invalid_rows} of {report.rows_checked} rows are invalid"
            if report.invalid_rows
            else report.errors[0].message
        )
        self.report = report

    @property
    def extensions(self) -> dict[str, Any]:
        return self.report.model_dump()


def _field_path(loc: tuple[int | str, ...]) -> str | None:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or None


class _Collector:
    """Checks rows one at a time, keeping valid ones as Arrow batches until the first error, then only counting."""

    def __init__(self, kind: DatasetSchema) -> None:
        self.model = ROW_MODELS[kind]
        self.schema = ARROW_SCHEMAS[kind]
        self.columns = list(self.model.model_fields)
        self._pending: list[dict[str, Any]] = []
        self._batches: list[pa.RecordBatch] = []
        self._errors: list[RowError] = []
        self._error_count = 0
        self._rows_checked = 0
        self._invalid_rows = 0

    def file_error(self, line: int | None, field: str | None, message: str) -> None:
        """A problem that is not one row's: a bad header, an unreadable file."""
        self._error_count += 1
        if len(self._errors) < MAX_REPORTED_ERRORS:
            self._errors.append(RowError(line=line, field=field, message=message))
        # The upload is rejected anyway: its valid rows need no memory any more.
        self._pending.clear()
        self._batches.clear()

    def row_error(self, line: int | None, field: str | None, message: str) -> None:
        self._rows_checked += 1
        self._invalid_rows += 1
        self.file_error(line, field, message)

    def check_json(self, line: int, raw: bytes) -> None:
        self._check(line, lambda: self.model.model_validate_json(raw))

    def check_object(self, line: int, row: dict[str, Any]) -> None:
        self._check(line, lambda: self.model.model_validate(row))

    def _check(self, line: int, validate: Callable[[], _Row]) -> None:
        self._rows_checked += 1
        try:
            row = validate()
        except ValidationError as error:
            self._invalid_rows += 1
            for detail in error.errors(include_url=False, include_input=False):
                self.file_error(line, _field_path(detail["loc"]), _message(detail))
            return
        if self._error_count:
            return  # only counting from the first error on
        self._pending.append(row.model_dump())
        if len(self._pending) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._batches.append(pa.RecordBatch.from_pylist(self._pending, schema=self.schema))
            self._pending = []

    def table(self) -> pa.Table:
        """The valid rows; DatasetInvalid when any error was found or there is no row at all."""
        if not self._rows_checked and not self._error_count:
            self.file_error(None, None, "the file holds no rows")
        if self._error_count:
            raise DatasetInvalid(
                ValidationReport(
                    errors=self._errors,
                    error_count=self._error_count,
                    rows_checked=self._rows_checked,
                    invalid_rows=self._invalid_rows,
                )
            )
        self._flush()
        return pa.Table.from_batches(self._batches, schema=self.schema)


def _message(detail: ErrorDetails) -> str:
    if detail["type"] == "model_type" and not detail["loc"]:
        return "a row must be a JSON object"
    return detail["msg"]


def _parse_jsonl(file: IO[bytes], rows: _Collector) -> None:
    for line, raw in enumerate(file, start=1):
        if line == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark, as some Windows tools write
        if raw.strip():
            # Without its line break, so that a JSON error's "line 1 column N" points into this line.
            rows.check_json(line, raw.rstrip(b"\r\n"))


def _checked_header(header: list[str], rows: _Collector) -> bool:
    ok = True
    for name in {name for name in header if header.count(name) > 1}:
        rows.file_error(1, name, "the column appears more than once")
        ok = False
    for name in (name for name in rows.columns if name not in header):
        rows.file_error(1, name, "required column is missing")
        ok = False
    for name in (name for name in header if name not in rows.columns):
        rows.file_error(1, name, f"unexpected column; the columns are {', '.join(rows.columns)}")
        ok = False
    return ok


def _parse_csv(file: IO[bytes], rows: _Collector, json_columns: tuple[str, ...]) -> None:
    """A header row naming the columns, then one row per record; `json_columns` (chat's messages, a multiple-choice
    row's choices and answer) hold JSON text."""
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text, strict=True)
        header = [name.strip() for name in next(reader, [])]  # "prompt, completion" names two known columns
        if not header or not _checked_header(header, rows):
            return
        while True:
            line = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                rows.row_error(line, None, f"malformed CSV: {error}")
                continue
            if not record:
                continue  # a blank line
            if len(record) != len(header):
                rows.row_error(line, None, f"expected {len(header)} fields, found {len(record)}")
                continue
            row: dict[str, Any] = dict(zip(header, record, strict=True))
            try:
                for column in json_columns:
                    row[column] = json.loads(row[column])
            except json.JSONDecodeError as error:
                rows.row_error(line, column, f"the column must hold JSON: {error.msg} at column {error.colno}")
                continue
            rows.check_object(line, row)
    except UnicodeDecodeError:
        rows.file_error(reader.line_num + 1, None, "the file is not UTF-8 text; nothing after this line was read")
    finally:
        text.detach()  # the caller owns the binary file: closing the wrapper must not close it


def _parse_parquet(file: IO[bytes], rows: _Collector) -> None:
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, OSError):
        rows.file_error(None, None, "the file is not a readable Parquet file")
        return
    total_rows = parquet.metadata.num_rows
    if total_rows > MAX_DECODED_ROWS:
        raise DecodedTooLarge(total_rows, 0, MAX_DECODED_ROWS, MAX_DECODED_BYTES)
    if not _checked_header(parquet.schema_arrow.names, rows):
        return
    line = decoded = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            decoded += batch.nbytes
            if decoded > MAX_DECODED_BYTES:
                raise DecodedTooLarge(total_rows, decoded, MAX_DECODED_ROWS, MAX_DECODED_BYTES)
            for row in batch.to_pylist():
                line += 1
                rows.check_object(line, row)
    except (pa.ArrowException, OSError):
        rows.file_error(line + 1, None, "the Parquet data cannot be read from this row on")


def validate_file(file: IO[bytes], fmt: DatasetFormat, kind: DatasetSchema) -> pa.Table:
    """Every row of `file` checked against `kind`: the rows as a table with `ARROW_SCHEMAS[kind]`, or
    DatasetInvalid with the report. Blocking (file I/O and CPU): from async code run it in a worker thread."""
    rows = _Collector(kind)
    if fmt is DatasetFormat.JSONL:
        _parse_jsonl(file, rows)
    elif fmt is DatasetFormat.CSV:
        _parse_csv(file, rows, CSV_JSON_COLUMNS.get(kind, ()))
    else:
        _parse_parquet(file, rows)
    return rows.table()


@asynccontextmanager
async def spooled(chunks: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[IO[bytes]]:
    """The upload in a temporary file (in memory while small), positioned at its start; UploadTooLarge as soon as
    more than `max_bytes` arrive. The file is gone when the block exits."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as file:
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLarge(max_bytes)
            # Past the in-memory threshold this is a disk write: keep it off the event loop.
            await asyncio.to_thread(file.write, chunk)
        file.seek(0)
        yield file


async def validate_upload(
    chunks: AsyncIterable[bytes], fmt: DatasetFormat, kind: DatasetSchema, *, max_bytes: int
) -> pa.Table:
    """Spool the streamed upload, then validate it in a worker thread (see `validate_file`)."""
    async with spooled(chunks, max_bytes) as file:
        return await asyncio.to_thread(validate_file, file, fmt, kind)
