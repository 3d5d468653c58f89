"""An eval report as files: `items.parquet`, one row per item (its question, the expected and the given answer, and a
column per metric), which DuckDB or pandas read as they are; and `report.json`, what was evaluated on what, and the
aggregates, which also become the artifact's signed metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .metrics import PERPLEXITY
from .suites import Item

ITEMS_FILE = "items.parquet"
REPORT_FILE = "report.json"


def perplexity(scored: list[tuple[float, int]]) -> float:
    """Token-weighted: exp of the mean negative log-probability over every token scored."""
    tokens = sum(n for _, n in scored)
    return math.exp(-sum(lp for lp, _ in scored) / tokens) if tokens else math.nan


def aggregates(scores: dict[str, list[float]], scored: list[tuple[float, int]] | None, items: int) -> dict[str, float]:
    """The mean of each answer metric over the items; perplexity over every reference token; and the item count."""
    found = {name: sum(values) / len(values) for name, values in scores.items() if values}
    if scored is not None:
        found[PERPLEXITY] = perplexity(scored)
    found["items"] = float(items)
    return found


def write(
    folder: Path,
    items: list[Item],
    answers: list[str] | None,
    scores: dict[str, list[float]],
    scored: list[tuple[float, int]] | None,
    about: dict[str, Any],
    totals: dict[str, float],
) -> None:
    """The report's two files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    columns: dict[str, pa.Array] = {
        "item": pa.array([item.index for item in items], pa.int64()),
        "question": pa.array([item.question for item in items], pa.string()),
        "reference": pa.array([item.reference for item in items], pa.string()),
    }
    if answers is not None:
        columns["answer"] = pa.array(answers, pa.string())
    for name, values in scores.items():
        columns[name] = pa.array(values, pa.float64())
    if scored is not None:
        columns["reference_logprob"] = pa.array([lp for lp, _ in scored], pa.float64())
        columns["reference_tokens"] = pa.array([n for _, n in scored], pa.int64())
        columns[PERPLEXITY] = pa.array([perplexity([pair]) for pair in scored], pa.float64())
    pq.write_table(pa.table(columns), folder / ITEMS_FILE)
    (folder / REPORT_FILE).write_text(json.dumps({**about, "metrics": totals}, indent=2, sort_keys=True) + "\n")
