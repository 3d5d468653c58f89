"""The adapter budget every backend keeps: which adapters are loaded (least recently used first), which are held by
running requests, and which idle ones to evict to make room for one more."""

from __future__ import annotations

from collections import Counter, OrderedDict
from pathlib import Path


class AdapterBudgetExceeded(Exception):
    """Every loaded adapter is in use, so none can make room for another."""


class AdapterSlots:
    def __init__(self, owner: str, capacity: int) -> None:
        self.owner = owner
        self.capacity = capacity
        self._loaded: OrderedDict[str, Path] = OrderedDict()  # least recently used first
        self._in_use: Counter[str] = Counter()

    def hold(self, name: str) -> None:
        """Mark `name` in use (before loading it, so a concurrent load cannot evict it meanwhile)."""
        self._in_use[name] += 1

    def release(self, name: str) -> None:
        self._in_use[name] -= 1
        if self._in_use[name] <= 0:
            del self._in_use[name]

    def touch(self, name: str) -> bool:
        """Whether `name` is loaded; if it is, it becomes the most recently used."""
        if name not in self._loaded:
            return False
        self._loaded.move_to_end(name)
        return True

    def to_evict(self) -> list[str]:
        """The least recently used idle adapters to unload so that one more fits."""
        excess = len(self._loaded) + 1 - self.capacity
        if excess <= 0:
            return []
        idle = [name for name in self._loaded if not self._in_use[name]]
        if len(idle) < excess:
            raise AdapterBudgetExceeded(f"all {self.capacity} adapters of {self.owner} are in use")
        return idle[:excess]

    def add(self, name: str, path: Path) -> None:
        self._loaded[name] = path

    def discard(self, name: str) -> bool:
        """Forget `name`; whether it was loaded."""
        return self._loaded.pop(name, None) is not None

    def names(self) -> list[str]:
        return list(self._loaded)

    def __len__(self) -> int:
        return len(self._loaded)
