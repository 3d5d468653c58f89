"""Processes of the dev stack: pid files, spawning in a new session, liveness, process-group shutdown, log tails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
TERM_GRACE_S = 15.0
KILL_GRACE_S = 5.0


class StackError(RuntimeError):
    """A component could not be started, reached or stopped; the message is meant for the person at the terminal."""


@dataclass(frozen=True)
class PidRecord:
    pid: int
    # The kernel's start time of the process ("" where /proc is absent). A pid file outlives reboots and crashes,
    # and the pid may since belong to an unrelated process, which we must neither report as ours nor signal.
    started: str


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, …; None if there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _start_time(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if fields else ""  # field 22 of proc(5); the first two precede the slice


def write_pid(path: Path, pid: int) -> PidRecord:
    record = PidRecord(pid, _start_time(pid))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{record.pid} {record.started}\n")
    return record


def read_pid(path: Path) -> PidRecord | None:
    try:
        pid, _, started = path.read_text().strip().partition(" ")
        return PidRecord(int(pid), started)
    except (OSError, ValueError):
        return None


# What this process spawned and has not yet reaped (a test fixture runs the stack as its own children): an exited
# child stays a zombie until collected, and a Popen dropped while its process runs warns.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def is_alive(record: PidRecord) -> bool:
    """True while the recorded process itself runs: not gone, not a zombie, not a later process reusing its pid."""
    _reap(record.pid)
    try:
        os.kill(record.pid, 0)
    except (ProcessLookupError, PermissionError):  # PermissionError: the pid now belongs to another user
        return False
    if not _PROC.is_dir():
        return True  # without procfs (macOS) existence is all we can tell
    fields = _stat(record.pid)
    return fields is not None and fields[0] != "Z" and (not record.started or fields[19] == record.started)


def running_pid(path: Path) -> int | None:
    record = read_pid(path)
    return record.pid if record and is_alive(record) else None


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> int:
    """Start argv in its own session (so its whole group can be signalled) with stdout and stderr appended to log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    _children[process.pid] = process
    return process.pid


def _group_alive(pgid: int) -> bool:
    _reap(pgid)
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    # Zombies count as gone: an orphan's zombie lingers until init gets round to collecting it.
    for entry in _PROC.iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_group(pgid: int, grace: float = TERM_GRACE_S) -> None:
    """SIGTERM the process group, wait up to `grace`, then SIGKILL it; returns once no member is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        if _wait_group_gone(pgid, wait):
            return
    raise StackError(f"process group {pgid} is still alive after SIGKILL")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(log: Path, lines: int = 25) -> str:
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16_384))  # logs of long runs are large; the end is enough
            tail = f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {log})"
    return f"--- last {len(tail)} lines of {log} ---\n" + "\n".join(tail)
