"""A data-parallel run: `ranks` processes under torchrun (torch.distributed, gloo on CPU, NCCL on GPUs), each running
`engine.run` on its share of every batch (rank.py), while this thread relays rank 0's news to the job's hooks and
the job's stop to every rank. How the two sides talk, and why through files, is in the README (Distributed training).

A rank that raised fails the job with that rank's error; a rank that vanished (killed, lost its machine) is
Transient: the job is retried and resumes from its last checkpoint."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from modelops_shared.jobs import JobFailure, Transient

from . import engine
from .callbacks import Hooks, Progress
from .domain import JobSpecError

RANK_MODULE = "modelops_trainer.rank"
LAUNCHER_PID = "MODELOPS_TRAINER_LAUNCHER_PID"
POLL_S = 0.05
STOP_GRACE_S = 30.0


def usable_cores() -> int:
    """The cores this process may run on (its affinity), not the machine's."""
    return len(os.sched_getaffinity(0))


def write_atomically(path: Path, text: str) -> None:
    """Readers see the whole text or no file: ranks and launcher poll each other's files."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


class RankFailed(JobFailure):
    """A training process raised: the same spec would fail the same way."""

    error_type = "training_error"


@dataclass(frozen=True)
class Channel:
    """The files one launch and its ranks share, in the job's scratch directory (the ranks run on this machine)."""

    root: Path

    @property
    def plan(self) -> Path:
        return self.root / "plan.pickle"

    @property
    def events(self) -> Path:
        """rank 0 → launcher: one JSON object per line (started, progressed, checkpointed)."""
        return self.root / "events.jsonl"

    @property
    def stop(self) -> Path:
        """launcher → ranks: why to stop, once written."""
        return self.root / "stop"

    @property
    def result(self) -> Path:
        return self.root / "result.pickle"

    @property
    def log(self) -> Path:
        return self.root / "torchrun.log"

    def ack(self, step: int) -> Path:
        """launcher → rank 0: the checkpoint of `step` is durable; training may go on (and rotate it away)."""
        return self.root / f"checkpoint-{step}.ack"

    def error(self, rank: int) -> Path:
        return self.root / f"rank-{rank}.error.json"

    def stop_reason(self) -> str | None:
        return self.stop.read_text() if self.stop.exists() else None


def launch(plan: engine.Plan, hooks: Hooks) -> engine.Result:
    """Train `plan` with `plan.ranks` processes on this machine; returns rank 0's result."""
    channel = Channel(plan.output_dir / "ranks")
    shutil.rmtree(channel.root, ignore_errors=True)  # a crashed attempt's news, stop and reports are not this one's
    channel.root.mkdir(parents=True)
    try:
        channel.plan.write_bytes(pickle.dumps(plan))
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise JobSpecError(f"the job's plugins cannot be sent to its training processes: {error}") from None
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a rendezvous of its own on a free local port
        f"--nproc-per-node={plan.ranks}",
        "--max-restarts=0",  # a lost rank is the job's retry to handle, from its checkpoint
        "-m",
        RANK_MODULE,
        str(channel.root),
    ]
    env = {
        **os.environ,
        # The ranks import what this process imported: plugins included, wherever they were found.
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        "OMP_NUM_THREADS": str(max(1, usable_cores() // plan.ranks)),
        LAUNCHER_PID: str(os.getpid()),
    }
    with channel.log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    relay = _Relay(channel, hooks)
    try:
        while process.poll() is None:
            relay.pump()
            reason = hooks.stop_reason()
            if reason and not channel.stop.exists():
                write_atomically(channel.stop, reason)
            time.sleep(POLL_S)
        relay.pump()
    finally:
        _end(process)
    if process.returncode == 0:
        result: engine.Result = pickle.loads(channel.result.read_bytes())
        return result
    raise _failure(channel, plan.ranks, process.returncode)


class _Relay:
    """Rank 0's news, read as it is appended, handed to the job's hooks in order."""

    def __init__(self, channel: Channel, hooks: Hooks) -> None:
        self.channel = channel
        self.hooks = hooks
        self.offset = 0

    def pump(self) -> None:
        if not self.channel.events.exists():
            return
        with self.channel.events.open("rb") as file:
            file.seek(self.offset)
            written = file.read()
        complete = written[: written.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            self._deliver(json.loads(line))

    def _deliver(self, news: dict[str, Any]) -> None:
        kind = news.pop("event")
        if kind == "started":
            self.hooks.started(**news)
        elif kind == "progressed":
            self.hooks.progressed(Progress(**news))
        elif kind == "checkpointed":
            self.hooks.checkpointed(news["step"], Path(news["directory"]))
            self.channel.ack(news["step"]).touch()


def _end(process: subprocess.Popen[bytes]) -> None:
    """torchrun and every rank gone: asked first (torchrun passes SIGTERM on to its ranks), then killed; whatever is
    left of the session torchrun started in (ranks it could not stop) is killed too."""
    if process.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=STOP_GRACE_S)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _failure(channel: Channel, ranks: int, returncode: int) -> Exception:
    """Why the run ended badly: the first rank that raised (not for want of a peer), or else a lost rank."""
    reports = [report for rank in range(ranks) if (report := _report(channel.error(rank))) is not None]
    raised = sorted((report for report in reports if not report["lost_peer"]), key=lambda report: report["at"])
    if raised:
        first = raised[0]
        message = f"rank {first['rank']} of {ranks}: {first['message']}"
        if first["kind"] == "spec":
            return JobSpecError(message)
        if first["kind"] == "memory":
            return MemoryError(message)
        return RankFailed(message)
    tail = channel.log.read_text(errors="replace")[-1500:] if channel.log.exists() else ""
    return Transient(
        f"a training process was lost (torchrun exit {returncode}); the job resumes from its checkpoint\n{tail}"
    )


def _report(path: Path) -> dict[str, Any] | None:
    """A rank's error report, if it wrote one whole."""
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return report
