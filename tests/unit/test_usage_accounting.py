"""Usage accounting: the meter around a job (its child processes' CPU time and memory included), pricing, a training
job's token estimate, the budget refusal, and an inference replica's period shared among its deployments."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from modelops_contracts import Hyperparameters, Resources, ResourceUsage
from modelops_gateway.settings import Prices
from modelops_gateway.usage.domain import BudgetExceeded, check_budget_left, price, training_tokens
from modelops_inference.usage import shares
from modelops_shared.jobs.usage import Meter

MIB = 1024**2


def test_the_meter_counts_a_child_process_cpu_time_and_memory():
    busy = (
        "import time; block = bytearray(300 * 2**20); end = time.process_time() + 0.6\n"
        "while time.process_time() < end: pass"
    )
    with Meter(every_s=0.05) as meter:
        subprocess.run([sys.executable, "-c", busy], check=True)
    reading = meter.reading(tokens=7, gpus=2)
    assert reading.cpu_seconds >= 0.6
    assert reading.peak_memory_bytes >= 300 * MIB
    assert reading.gpu_seconds == pytest.approx(2 * reading.wall_seconds)
    assert reading.tokens == 7


def test_usage_is_priced_by_time_memory_and_tokens():
    prices = Prices(cpu_second=0.01, gpu_second=1.0, memory_gib_hour=3.6, million_tokens=2.0)
    used = ResourceUsage(
        wall_seconds=1000, cpu_seconds=100, gpu_seconds=10, peak_memory_bytes=2 * 1024**3, tokens=500_000
    )
    # cores 1.0 + GPUs 10.0 + 2 GiB × 1000 s at 3.6 a GiB-hour 2.0 + half a million tokens 1.0
    assert price(used, prices) == pytest.approx(14.0)


def test_a_training_job_s_tokens_come_from_its_budget_and_resources():
    steps = Hyperparameters(max_steps=10, batch_size=4, seq_len=128)
    assert training_tokens(steps, Resources(workers=2), dataset_rows=999) == 10 * 4 * 2 * 128
    epochs = Hyperparameters(epochs=2, seq_len=64)
    assert training_tokens(epochs, Resources(), dataset_rows=100) == 2 * 100 * 64


def test_a_job_past_the_budget_left_is_refused_and_says_by_how_much():
    check_budget_left("ann", None, 1e9, 1e9, "USD")
    check_budget_left("ann", 1.0, 0.5, 0.5, "USD")
    with pytest.raises(BudgetExceeded):
        check_budget_left("ann", 0.0, 0.0, 0.0, "USD")  # a budget of 0 refuses every job
    with pytest.raises(
        BudgetExceeded, match=r"estimated at 0.6000 USD; ann has 0.5000 USD left of a 1.0000 USD"
    ) as refused:
        check_budget_left("ann", 1.0, 0.5, 0.6, "USD")
    assert refused.value.status == 402
    assert refused.value.extensions == {"budget": 1.0, "committed": 0.5, "estimate": 0.6, "currency": "USD"}


def test_a_replica_s_period_is_shared_among_deployments_by_tokens():
    with Meter() as meter:
        sum(range(200_000))
    now = datetime.now(UTC)
    before = {"a": (1, 10, 10), "idle": (5, 50, 50)}
    after = {"a": (3, 40, 40), "b": (1, 10, 50), "idle": (5, 50, 50)}
    reports = {r.deployment: r for r in shares("replica-1", now, now, before, after, meter, gpus=1)}
    assert set(reports) == {"a", "b"}
    assert (reports["a"].requests, reports["a"].prompt_tokens, reports["a"].completion_tokens) == (2, 30, 30)
    whole = meter.reading(gpus=1)
    assert reports["a"].usage.cpu_seconds == pytest.approx(whole.cpu_seconds * 60 / 120)
    assert reports["b"].usage.gpu_seconds == pytest.approx(whole.gpu_seconds * 60 / 120)
    assert reports["b"].usage.tokens == 60
    # The replica's memory is charged once, shared like its time.
    assert sum(r.usage.peak_memory_bytes for r in reports.values()) == pytest.approx(whole.peak_memory_bytes, abs=2)
