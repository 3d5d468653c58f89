"""How every benchmark prints a repeated measurement: the median of its runs with their min-max."""

from __future__ import annotations

import statistics


def spread(values: list[float], digits: int = 0, width: int = 0) -> str:
    """`median (min-max)` with `digits` decimals, the median right-aligned in `width`; "-" when nothing was measured."""
    if not values:
        return "-"
    return f"{statistics.median(values):{width}.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"
