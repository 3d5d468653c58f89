"""Run the benchmarks one after another and write what they printed, with the machine, the date and each command.

    python bench/run_all.py                   # `make bench`: the headline figures, about 16 minutes on 2 cores
    python bench/run_all.py --full            # `make bench-full`: every benchmark at its own (larger) defaults
    python bench/run_all.py --only bus,train  # a subset, at make bench's sizes (with --full: at the defaults)

Each benchmark starts what it needs (a fresh embedded stack of its own) and prints its own same-run baseline and
ratio, each figure the median of at least 3 runs; this script only runs them in turn, so they never compete for the
CPU. A benchmark that fails is recorded as failed with the tail of its output, and the others still run. The output
goes to bench/LATEST.md; bench/RESULTS.md is the curated record (each figure with its baseline, machine, date,
command and what changed), updated by hand from such runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/<name>.py in running order, with the arguments `make bench` gives it (None: only with --full). Smaller than
# the defaults so that the whole run stays near 20 minutes on 2 cores; every one still reports medians of 3.
BENCHMARKS: dict[str, list[str] | None] = {
    "bus": ["--pings", "150", "--burst", "1000"],
    "registry_load": ["--submissions", "6"],
    "gateway": ["--duration", "5"],
    "transfer": ["--dataset-mb", "20", "--artifact-mb", "50"],
    "train": ["--steps", "10", "--seq-len", "128"],
    "inference": ["--model", "tiny"],  # on SmolLM2 (its default) it takes 20 minutes alone
    "latency": ["--model", "tiny"],  # on SmolLM2 more than 20 minutes here
    "end_to_end": ["--steps", "4"],
    "registry": None,
    "cold_start": None,
    "distributed": None,
    "adapter_memory": None,
    "quantize": None,
    "evaluate": None,
    "rag": None,
    "router": None,
}


@dataclass
class Outcome:
    name: str
    command: str
    returncode: int
    seconds: float
    output: str


def run(name: str, arguments: list[str]) -> Outcome:
    command = " ".join(["python", f"bench/{name}.py", *arguments])
    print(f"== {command}", flush=True)
    started = time.perf_counter()
    argv = [sys.executable, str(HERE / f"{name}.py"), *arguments]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    print(done.stdout, end="", flush=True)
    output = done.stdout if done.returncode == 0 else (done.stdout + done.stderr)[-4000:]
    return Outcome(name, command, done.returncode, seconds, output.strip())


def machine() -> list[tuple[str, str]]:
    import torch

    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} logical cores"),
        ("memory", f"{memory_kib / 2**20:.1f} GiB"),
        ("GPU", gpu),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("torch", torch.__version__),
    ]


def render(outcomes: list[Outcome], started: datetime) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python bench/run_all.py` on {started:%Y-%m-%d %H:%M} UTC, in {_minutes(outcomes)}. Each",
        "benchmark measures its own baseline in the same run and prints the ratio; absolute figures on a 2-core",
        "machine are noisy, the ratios less so. bench/RESULTS.md is the curated record.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine()),
        "",
    ]
    for outcome in outcomes:
        status = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
        lines += [
            f"## {outcome.name}",
            "",
            f"`{outcome.command}` — {status}, {outcome.seconds:.0f} s",
            "",
            "```",
            outcome.output,
            "```",
            "",
        ]
    return "\n".join(lines)


def _minutes(outcomes: list[Outcome]) -> str:
    return f"{sum(outcome.seconds for outcome in outcomes) / 60:.0f} min"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    parser.add_argument("--full", action="store_true", help="every benchmark, each at its own defaults")
    parser.add_argument("--output", type=Path, default=HERE / "LATEST.md")
    args = parser.parse_args()
    headline = [name for name, quick in BENCHMARKS.items() if quick is not None or args.full]
    names = args.only.split(",") if args.only else headline
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = datetime.now(UTC)
    outcomes = [run(name, [] if args.full else BENCHMARKS[name] or []) for name in names]
    args.output.write_text(render(outcomes, started))
    print(f"wrote {args.output}")
    return 0 if all(outcome.returncode == 0 for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
