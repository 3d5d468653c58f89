"""Run every benchmark and write bench/RESULTS.md: each one's figures and ratios, the machine, the date, the command.

    python bench/run_all.py [--only bus,registry] [--output bench/RESULTS.md]     # `make bench` runs it

Each benchmark starts what it needs (a fresh embedded stack of its own) and prints its own same-run baseline and
ratio; this script only runs them one after another, so they never compete for the CPU, and records what they
printed. A benchmark that fails is recorded as failed with the tail of its output, and the others still run.
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
# bench/<name>.py, run in this order
BENCHMARKS = (
    "bus",
    "registry",
    "train",
    "inference",
    "cold_start",
    "distributed",
    "adapter_memory",
    "gateway",
    "quantize",
    "evaluate",
    "rag",
    "router",
)


@dataclass
class Outcome:
    name: str
    command: str
    returncode: int
    seconds: float
    output: str


def run(name: str) -> Outcome:
    command = f"python bench/{name}.py"
    print(f"== {command}", flush=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(HERE / f"{name}.py")], capture_output=True, text=True, check=False)
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
        f"Written by `make bench` (`python bench/run_all.py`) on {started:%Y-%m-%d %H:%M} UTC. Each benchmark measures",
        "its own baseline in the same run and prints the ratio; absolute figures on a shared 2-core machine are noisy,",
        "the ratios less so. Regenerate with `make bench`.",
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = datetime.now(UTC)
    outcomes = [run(name) for name in names]
    args.output.write_text(render(outcomes, started))
    print(f"wrote {args.output}")
    return 0 if all(outcome.returncode == 0 for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
