"""Dataset upload validation: each schema kind's row rules, the JSONL, CSV and Parquet parsers with their line
numbers, the report's first-100 cap, and the streamed upload's size limit."""

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from modelops_contracts import DatasetSchema
from modelops_gateway.datasets import (
    ARROW_SCHEMAS,
    DatasetFormat,
    DatasetInvalid,
    DecodedTooLarge,
    UnsupportedFormat,
    UploadTooLarge,
    ValidationReport,
    format_of,
    validate_file,
    validate_upload,
    validation,
)

SFT, CHAT, PREFERENCE = DatasetSchema.SFT, DatasetSchema.CHAT, DatasetSchema.PREFERENCE
MULTIPLE_CHOICE = DatasetSchema.MULTIPLE_CHOICE
ROUTING = DatasetSchema.ROUTING
JSONL, CSV, PARQUET = DatasetFormat.JSONL, DatasetFormat.CSV, DatasetFormat.PARQUET

GOOD_ROWS: dict[DatasetSchema, list[dict[str, Any]]] = {
    SFT: [{"prompt": "2+2?", "completion": "4"}, {"prompt": "Capital of France?", "completion": "Paris"}],
    CHAT: [
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "tool", "content": '{"temp": 21}'},
                {"role": "assistant", "content": "21 degrees."},
            ]
        },
    ],
    PREFERENCE: [{"prompt": "Say hi", "chosen": "Hello!", "rejected": "Go away."}],
    MULTIPLE_CHOICE: [{"prompt": "The capital of France is", "choices": ["Lyon", "Paris", "Nice"], "answer": 1}],
    ROUTING: [{"prompt": "Count the orders per city in SQL.", "target": "sql"}],
}


def jsonl(*rows: object) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def validate(data: bytes, fmt: DatasetFormat, kind: DatasetSchema) -> pa.Table:
    return validate_file(io.BytesIO(data), fmt, kind)


def report_of(data: bytes, fmt: DatasetFormat, kind: DatasetSchema) -> ValidationReport:
    with pytest.raises(DatasetInvalid) as caught:
        validate(data, fmt, kind)
    return caught.value.report


def errors_of(data: bytes, fmt: DatasetFormat, kind: DatasetSchema) -> list[tuple[int | None, str | None, str]]:
    return [(error.line, error.field, error.message) for error in report_of(data, fmt, kind).errors]


@pytest.mark.parametrize("kind", list(DatasetSchema))
def test_good_rows_become_a_table_with_the_kinds_fixed_schema(kind: DatasetSchema) -> None:
    table = validate(jsonl(*GOOD_ROWS[kind]), JSONL, kind)

    assert table.schema.equals(ARROW_SCHEMAS[kind])
    assert table.to_pylist() == GOOD_ROWS[kind]


def test_sft_row_errors_name_line_field_and_reason() -> None:
    data = b"\n".join(
        [
            json.dumps({"prompt": "ok", "completion": "fine"}).encode(),
            b"",  # blank lines are skipped but still counted
            json.dumps({"prompt": "  ", "completion": "x"}).encode(),
            json.dumps({"prompt": "x"}).encode(),
            json.dumps({"prompt": 7, "completion": "x", "score": 1}).encode(),
            b'{"prompt": "x", "completion": ',
            b"[1, 2]",
        ]
    )

    assert errors_of(data, JSONL, SFT) == [
        (3, "prompt", "must not be empty or only whitespace"),
        (4, "completion", "Field required"),
        (5, "prompt", "Input should be a valid string"),
        (5, "score", "Extra inputs are not permitted"),
        (6, None, "Invalid JSON: EOF while parsing a value at line 1 column 30"),
        (7, None, "a row must be a JSON object"),
    ]


@pytest.mark.parametrize(
    ("messages", "field", "message"),
    [
        ([{"role": "user", "content": "Hi"}], "messages", "needs at least one assistant message to learn from"),
        ([], "messages", "List should have at least 1 item after validation, not 0"),
        ([{"role": "bot", "content": "Hi"}], "messages[0].role", "Input should be 'system', 'user', 'assistant' or"),
        ([{"role": "assistant", "content": ["Hi"]}], "messages[0].content", "Input should be a valid string"),
        ([{"role": "assistant", "content": ""}], "messages[0].content", "must not be empty or only whitespace"),
        ([{"role": "assistant"}], "messages[0].content", "Field required"),
        (
            [{"role": "assistant", "content": "x", "tool_calls": []}],
            "messages[0].tool_calls",
            "Extra inputs are not permitted",
        ),
        ("Hi", "messages", "Input should be a valid array"),
    ],
    ids=["no-assistant", "empty", "role", "content-type", "blank", "no-content", "tool-calls", "not-a-list"],
)
def test_chat_rows_follow_openais_format(messages: object, field: str, message: str) -> None:
    [(line, got_field, got_message)] = errors_of(jsonl({"messages": messages}), JSONL, CHAT)

    assert (line, got_field) == (1, field)
    assert got_message.startswith(message)


def test_chat_rows_refuse_openais_tools_key() -> None:
    row = {"messages": GOOD_ROWS[CHAT][0]["messages"], "tools": []}

    assert errors_of(jsonl(row), JSONL, CHAT) == [(1, "tools", "Extra inputs are not permitted")]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "p", "chosen": "same", "rejected": "same"}, [("rejected", "must differ from chosen")]),
        ({"chosen": "a", "rejected": "b"}, [("prompt", "Field required")]),
        (
            {
                "prompt": [{"role": "user", "content": "p"}],
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            },
            [(name, "Input should be a valid string") for name in ("prompt", "chosen", "rejected")],
        ),
    ],
    ids=["identical-pair", "implicit-prompt", "conversational"],
)
def test_preference_rows_take_trls_standard_form_only(row: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert errors_of(jsonl(row), JSONL, PREFERENCE) == [(1, field, message) for field, message in expected]


def test_jsonl_tolerates_a_byte_order_mark_and_crlf() -> None:
    data = b"\xef\xbb\xbf" + jsonl(*GOOD_ROWS[SFT]).replace(b"\n", b"\r\n")

    assert validate(data, JSONL, SFT).to_pylist() == GOOD_ROWS[SFT]


def test_invalid_utf8_in_jsonl_is_a_row_error() -> None:
    data = jsonl(GOOD_ROWS[SFT][0]) + b'{"prompt": "caf\xe9", "completion": "x"}\n'

    [(line, field, message)] = errors_of(data, JSONL, SFT)

    assert (line, field) == (2, None)
    assert message.startswith("Invalid JSON")


def test_csv_rows_start_at_line_two_and_quoted_newlines_keep_line_numbers_true() -> None:
    data = b'prompt,completion\nfirst,"two\nlines"\n,empty prompt\nshort\n"bad"quote,x\nlast,row\n'

    assert errors_of(data, CSV, SFT) == [
        (4, "prompt", "must not be empty or only whitespace"),
        (5, None, "expected 2 fields, found 1"),
        (6, None, "malformed CSV: ',' expected after '\"'"),
    ]


def test_csv_columns_in_any_order_with_a_byte_order_mark_and_spaced_names() -> None:
    data = "\ufeffcompletion, prompt\r\n4,2+2?\r\nParis,Capital of France?\r\n".encode()

    assert validate(data, CSV, SFT).to_pylist() == GOOD_ROWS[SFT]


def test_csv_header_problems_are_reported_once_at_line_one() -> None:
    data = b"prompt,prompt,answer\na,b,c\n" * 3

    assert errors_of(data, CSV, SFT) == [
        (1, "prompt", "the column appears more than once"),
        (1, "completion", "required column is missing"),
        (1, "answer", "unexpected column; the columns are prompt, completion"),
    ]


def test_csv_chat_messages_column_holds_json() -> None:
    good = json.dumps(GOOD_ROWS[CHAT][0]["messages"]).replace('"', '""')
    data = f'messages\n"{good}"\n"[{{""role"": ""user""}}"\n'.encode()

    assert errors_of(data, CSV, CHAT) == [
        (3, "messages", "the column must hold JSON: Expecting ',' delimiter at column 18")
    ]
    assert validate(f'messages\n"{good}"\n'.encode(), CSV, CHAT).to_pylist() == [GOOD_ROWS[CHAT][0]]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "Q", "choices": ["a", "b"], "answer": 2}, [("answer", "must index one of the 2 choices")]),
        (
            {"prompt": "Q", "choices": ["a"], "answer": 0},
            [("choices", "List should have at least 2 items after validation, not 1")],
        ),
        ({"prompt": "Q", "choices": ["a", "b"], "answer": "1"}, [("answer", "Input should be a valid integer")]),
        ({"prompt": "Q", "choices": ["a", " "], "answer": 0}, [("choices[1]", "must not be empty or only whitespace")]),
    ],
)
def test_multiple_choice_rows_index_one_of_at_least_two_choices(row: dict[str, Any], expected: list) -> None:
    assert errors_of(jsonl(row), JSONL, MULTIPLE_CHOICE) == [(1, field, message) for field, message in expected]


def test_csv_multiple_choice_choices_and_answer_hold_json() -> None:
    data = b'prompt,choices,answer\nThe capital of France is,"[""Lyon"", ""Paris"", ""Nice""]",1\n'
    assert validate(data, CSV, MULTIPLE_CHOICE).to_pylist() == GOOD_ROWS[MULTIPLE_CHOICE]


def test_csv_that_is_not_utf8_stops_with_a_file_error() -> None:
    data = b"prompt,completion\nok,fine\ncaf\xe9,x\n"

    [(line, field, message)] = errors_of(data, CSV, SFT)

    assert (field, message) == (None, "the file is not UTF-8 text; nothing after this line was read")
    assert line is not None


@pytest.mark.parametrize("kind", list(DatasetSchema))
def test_parquet_with_the_kinds_schema_round_trips(kind: DatasetSchema) -> None:
    data = parquet(pa.Table.from_pylist(GOOD_ROWS[kind], schema=ARROW_SCHEMAS[kind]))

    assert validate(data, PARQUET, kind).to_pylist() == GOOD_ROWS[kind]


def test_parquet_rows_are_numbered_from_one_and_types_are_strict() -> None:
    table = pa.table({"prompt": ["a", None, "c", "d"], "completion": ["x", "y", "", "z"]})
    typed = pa.table({"prompt": [1], "completion": ["x"]})

    assert errors_of(parquet(table), PARQUET, SFT) == [
        (2, "prompt", "Input should be a valid string"),
        (3, "completion", "must not be empty or only whitespace"),
    ]
    assert errors_of(parquet(typed), PARQUET, SFT) == [(1, "prompt", "Input should be a valid string")]


def test_parquet_large_strings_and_extra_columns() -> None:
    large = pa.table({"prompt": pa.array(["a"], pa.large_string()), "completion": pa.array(["b"], pa.large_string())})
    extra = pa.table({"prompt": ["a"], "completion": ["b"], "id": [1]})

    assert validate(parquet(large), PARQUET, SFT).to_pylist() == [{"prompt": "a", "completion": "b"}]
    assert errors_of(parquet(extra), PARQUET, SFT) == [
        (1, "id", "unexpected column; the columns are prompt, completion")
    ]


def test_a_file_that_is_not_parquet() -> None:
    assert errors_of(b"prompt,completion\na,b\n", PARQUET, SFT) == [
        (None, None, "the file is not a readable Parquet file")
    ]


@pytest.mark.parametrize(("fmt", "data"), [(JSONL, b""), (JSONL, b"\n\n"), (CSV, b""), (CSV, b"prompt,completion\n")])
def test_a_file_without_rows_is_invalid(fmt: DatasetFormat, data: bytes) -> None:
    with pytest.raises(DatasetInvalid, match="the file holds no rows") as caught:
        validate(data, fmt, SFT)

    assert caught.value.report.rows_checked == 0


def test_the_report_keeps_the_first_100_errors_and_counts_them_all() -> None:
    rows = [{"prompt": "p", "completion": "c"} if i % 2 else {"prompt": "", "completion": ""} for i in range(300)]

    report = report_of(jsonl(*rows), JSONL, SFT)

    assert len(report.errors) == 100
    assert report.errors[0].line == 1
    assert report.errors[-1].line == 99  # two errors per bad row, bad rows on odd lines
    assert (report.error_count, report.rows_checked, report.invalid_rows) == (300, 300, 150)


def test_dataset_invalid_carries_what_a_422_needs() -> None:
    with pytest.raises(DatasetInvalid) as caught:
        validate(jsonl({"prompt": "", "completion": "c"}, {"prompt": "p", "completion": "c"}), JSONL, SFT)

    error = caught.value
    assert (error.status, error.slug, str(error)) == (422, "dataset-invalid", "1 of 2 rows are invalid")
    assert error.extensions["errors"] == [
        {"line": 1, "field": "prompt", "message": "must not be empty or only whitespace"}
    ]


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [("train.jsonl", JSONL), ("a/b/TRAIN.NDJSON", JSONL), ("x.csv", CSV), ("x.parquet", PARQUET), ("x.pq", PARQUET)],
)
def test_format_from_filename(filename: str, fmt: DatasetFormat) -> None:
    assert format_of(filename) is fmt


@pytest.mark.parametrize("filename", ["data.json", "data", "data.jsonl.gz"])
def test_unknown_formats_are_refused(filename: str) -> None:
    with pytest.raises(UnsupportedFormat, match="name the file with one of"):
        format_of(filename)


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("spool_bytes", [validation.SPOOL_MEMORY_BYTES, 64], ids=["in-memory", "rolled-to-disk"])
@pytest.mark.parametrize("fmt", [JSONL, CSV, PARQUET])
async def test_a_streamed_upload_is_validated_whatever_its_chunking(
    fmt: DatasetFormat, spool_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "SPOOL_MEMORY_BYTES", spool_bytes)
    rows = GOOD_ROWS[SFT] * 50
    data = {
        JSONL: lambda: jsonl(*rows),
        CSV: lambda: b"prompt,completion\n" + b"".join(f"{r['prompt']},{r['completion']}\n".encode() for r in rows),
        PARQUET: lambda: parquet(pa.Table.from_pylist(rows, schema=ARROW_SCHEMAS[SFT])),
    }[fmt]()

    table = await validate_upload(chunked(data, 7), fmt, SFT, max_bytes=len(data))

    assert table.to_pylist() == rows


async def test_an_upload_over_the_size_limit_is_stopped() -> None:
    data = jsonl(*GOOD_ROWS[SFT] * 100)
    consumed = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal consumed
        async for chunk in chunked(data, 64):
            consumed += len(chunk)
            yield chunk

    with pytest.raises(UploadTooLarge) as caught:
        await validate_upload(counted(), JSONL, SFT, max_bytes=1000)

    assert (caught.value.status, caught.value.max_bytes) == (413, 1000)
    assert consumed <= 1000 + 64  # it stops at the chunk that crosses the limit, not at the end of the upload


@pytest.mark.parametrize("limit", ["MAX_DECODED_ROWS", "MAX_DECODED_BYTES"])
def test_a_parquet_file_that_decodes_past_the_limits_is_refused_before_its_rows_are_read(monkeypatch, limit) -> None:
    rows = [{"prompt": "p" * 100_000, "completion": "c"} for _ in range(50)]  # 5 MB of text, compressed to little
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink, compression="zstd")
    assert sink.tell() < 100_000
    monkeypatch.setattr(validation, limit, 40 if limit == "MAX_DECODED_ROWS" else 1_000_000)
    sink.seek(0)
    with pytest.raises(DecodedTooLarge) as refused:
        validate_file(sink, PARQUET, SFT)
    assert (refused.value.status, refused.value.slug) == (413, "decoded-too-large")
    assert "the file holds 50 rows" in str(refused.value)


def test_a_routing_row_names_its_target_as_a_label() -> None:
    rows = [{"prompt": "Hi", "target": "Small Talk"}, {"prompt": " ", "target": "chat"}, {"prompt": "Hi"}]
    assert [(line, field) for line, field, _ in errors_of(jsonl(*rows), JSONL, ROUTING)] == [
        (1, "target"),
        (2, "prompt"),
        (3, "target"),
    ]
