"""The bridge between a running transformers Trainer and the job: progress at a steady cadence, checkpoints handed
over as they are written, and a stop (cancel, hand-off, shutdown) honoured at the next step boundary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    loss: float
    learning_rate: float
    tokens_per_second: float
    eta_seconds: float


class Hooks(Protocol):
    """What the job does with training news; called on the training thread, so implementations must be thread-safe."""

    def started(self, total_steps: int, resumed_from_step: int) -> None: ...

    def progressed(self, progress: Progress) -> None: ...

    def checkpointed(self, step: int, directory: Path) -> None:
        """Blocks until the checkpoint is durable elsewhere: the next one may rotate this directory away."""

    def stop_reason(self) -> str | None:
        """Why training must stop now (cancelled, handed off), or None to go on."""


class JobCallback(TrainerCallback):
    def __init__(self, hooks: Hooks, *, every_steps: int, every_s: float) -> None:
        self.hooks = hooks
        self.every_steps = every_steps
        self.every_s = every_s
        # Tokens trained on so far in this process, given the latest logs; the trainer builder knows how to count.
        self.tokens_seen: Callable[[dict[str, Any]], float] = lambda _: 0.0
        self.stopped: str | None = None
        self._start_step = 0
        self._start_time = 0.0
        self._last_step = 0
        self._last_time = 0.0
        self._logs: dict[str, Any] = {}

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        # On resume the Trainer has already restored `global_step` from the checkpoint at this point.
        self._start_step = self._last_step = state.global_step
        self._start_time = self._last_time = time.monotonic()
        self.hooks.started(state.max_steps, state.global_step)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if logs and "loss" in logs:
            self._logs = dict(logs)
            now = time.monotonic()
            if state.global_step - self._last_step >= self.every_steps or now - self._last_time >= self.every_s:
                self._report(state, now)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        reason = self.hooks.stop_reason()
        if reason:
            self.stopped = reason
            control.should_training_stop = True
            control.should_save = False

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        if self.stopped is None:
            self.hooks.checkpointed(state.global_step, Path(str(args.output_dir)) / f"checkpoint-{state.global_step}")

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        if self._logs and self._last_step != state.global_step and self.stopped is None:
            self._report(state, time.monotonic())

    def tokens(self) -> float:
        """Tokens this process has trained on so far."""
        return self.tokens_seen(self._logs)

    def _report(self, state: TrainerState, now: float) -> None:
        done = state.global_step - self._start_step
        elapsed = max(now - self._start_time, 1e-9)
        self.hooks.progressed(
            Progress(
                step=state.global_step,
                total_steps=state.max_steps,
                loss=float(self._logs["loss"]),
                learning_rate=float(self._logs.get("learning_rate", 0.0)),
                tokens_per_second=self.tokens() / elapsed,
                eta_seconds=(state.max_steps - state.global_step) * elapsed / done if done else 0.0,
            )
        )
        self._last_step, self._last_time = state.global_step, now
