"""The adapter budget both inference backends keep: LRU order, held adapters never evicted."""

from pathlib import Path

import pytest
from modelops_inference.adapter_slots import AdapterBudgetExceeded, AdapterSlots


def _slots(*names: str, capacity: int = 2) -> AdapterSlots:
    slots = AdapterSlots("base", capacity)
    for name in names:
        slots.add(name, Path(name))
    return slots


def test_room_left_evicts_nothing():
    assert _slots("a").to_evict() == []


def test_a_full_budget_evicts_the_least_recently_used():
    slots = _slots("a", "b")
    assert slots.touch("a")
    assert slots.to_evict() == ["b"]
    assert not slots.touch("c")


def test_held_adapters_are_passed_over_and_all_held_is_refused():
    slots = _slots("a", "b")
    slots.hold("a")
    assert slots.to_evict() == ["b"]
    slots.hold("b")
    with pytest.raises(AdapterBudgetExceeded, match="all 2 adapters of base are in use"):
        slots.to_evict()
    slots.release("b")
    assert slots.to_evict() == ["b"]


def test_a_shrunk_budget_evicts_enough_and_discard_says_what_was_loaded():
    slots = _slots("a", "b", "c", capacity=2)
    assert slots.to_evict() == ["a", "b"]
    assert slots.discard("a")
    assert not slots.discard("a")
    assert (slots.names(), len(slots)) == (["b", "c"], 2)
