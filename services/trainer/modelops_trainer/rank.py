"""One rank of a data-parallel run, started by torchrun for distributed.launch: `python -m modelops_trainer.rank
<channel dir>`. Every rank runs `engine.run` on the same plan (the Trainer shards each batch across ranks); rank 0
reports through the channel; every rank agrees on a stop at the same step, or the others would wait on it forever."""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import torch
import torch.distributed as dist

from . import engine
from .callbacks import Progress
from .distributed import LAUNCHER_PID, POLL_S, Channel, write_atomically
from .domain import JobSpecError

LAUNCHER_GONE = "the trainer that launched this run is gone"
COLLECTIVE_TIMEOUT = timedelta(hours=2)


class RankHooks:
    """The job's hooks as one rank sees them: rank 0 writes the news, every rank takes part in stops and saves."""

    def __init__(self, channel: Channel, rank: int, world_size: int, device: torch.device) -> None:
        self.channel = channel
        self.rank = rank
        self.world_size = world_size
        self.device = device
        self.launcher = int(os.environ[LAUNCHER_PID])

    def started(self, total_steps: int, resumed_from_step: int) -> None:
        self._tell({"event": "started", "total_steps": total_steps, "resumed_from_step": resumed_from_step})

    def progressed(self, progress: Progress) -> None:
        # Rank 0 counts its own tokens; every rank trains on as many packed rows per step.
        news = asdict(progress) | {"tokens_per_second": progress.tokens_per_second * self.world_size}
        self._tell({"event": "progressed", **news})

    def checkpointed(self, step: int, directory: Path) -> None:
        dist.barrier()  # every rank's part (its RNG state) is in the checkpoint before it leaves
        if self.rank != 0:
            return
        self._tell({"event": "checkpointed", "step": step, "directory": str(directory)})
        while not self.channel.ack(step).exists():
            if not psutil.pid_exists(self.launcher):
                raise RuntimeError(LAUNCHER_GONE)
            time.sleep(POLL_S)

    def stop_reason(self) -> str | None:
        mine = self.channel.stop_reason() or (None if psutil.pid_exists(self.launcher) else LAUNCHER_GONE)
        anyone = torch.tensor([0 if mine is None else 1], device=self.device)
        dist.all_reduce(anyone, op=dist.ReduceOp.MAX)
        if not anyone.item():
            return None
        return mine or self.channel.stop_reason() or LAUNCHER_GONE

    def _tell(self, news: dict[str, Any]) -> None:
        if self.rank == 0:
            with self.channel.events.open("a") as events:
                events.write(json.dumps(news) + "\n")


def main(channel: Channel) -> None:
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    # Long enough for rank 0 to hand a checkpoint to the object store while the others wait in the next collective.
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        plan: engine.Plan = pickle.loads(channel.plan.read_bytes())
        result = engine.run(plan, RankHooks(channel, rank, world_size, device))
        if rank == 0:
            written = channel.result.with_suffix(".partial")
            written.write_bytes(pickle.dumps(result))
            written.replace(channel.result)
    except Exception as error:
        _report(channel, rank, error)
        raise
    dist.destroy_process_group()


def _report(channel: Channel, rank: int, error: Exception) -> None:
    """What this rank raised, for the launcher to tell a bad job from a lost peer."""
    kind = "spec" if isinstance(error, JobSpecError) else "memory" if _out_of_memory(error) else "error"
    report = {
        "rank": rank,
        "at": time.time(),
        "kind": kind,
        "message": f"{type(error).__name__}: {error}"[:2000],
        "lost_peer": isinstance(error, dist.DistError) or _lost_peer(str(error)),
    }
    write_atomically(channel.error(rank), json.dumps(report))


def _out_of_memory(error: Exception) -> bool:
    return isinstance(error, (torch.OutOfMemoryError, MemoryError))


def _lost_peer(message: str) -> bool:
    """gloo's words for a peer that went away mid-collective (NCCL raises DistError)."""
    lowered = message.lower()
    gone = ("connection closed by peer", "connection reset", "broken pipe", LAUNCHER_GONE)
    return any(words in lowered for words in gone)


if __name__ == "__main__":
    main(Channel(Path(sys.argv[1])))
