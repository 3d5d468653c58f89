"""A platform for the e2e tests: the whole stack as processes, driven with `modelops-stack`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("modelops-stack")
SERVICES = ("gateway", "registry", "trainer", "inference")


@dataclass(frozen=True)
class Platform:
    env: dict[str, str]
    url: str
    key_file: Path

    @property
    def key(self) -> str:
        return self.key_file.read_text().strip()

    def stack(self, command: str) -> subprocess.CompletedProcess[str]:
        """`modelops-stack up|down` on this platform; fails the test unless it succeeds."""
        done = subprocess.run([str(CLI), command], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A process beside the stack (bootstrap-base, replay), with the stack's variables."""
        done = subprocess.run(argv, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done
