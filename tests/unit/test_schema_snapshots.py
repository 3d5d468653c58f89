"""JSON-schema snapshots of every message: a removed, renamed or retyped field fails; new optional fields pass, and
so does an enum's new member, and a list of its members allowed to grow with it (deploy the consumers before
anything produces the new member: they refuse what they do not know).

A missing snapshot fails; `pytest tests/unit/test_schema_snapshots.py --update-snapshots` writes it (commit it). A
breaking change inside v1 is a new topic version instead — delete a snapshot only when you really mean to break the
contract.
"""

import json
from pathlib import Path

import pytest
from modelops_contracts import MESSAGE_TYPES

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _schema(model) -> dict:
    return model.model_json_schema()


def _field_shapes(schema: dict) -> dict[str, object]:
    """Each property's type description, with $defs resolved one level so a retyped nested model shows."""
    definitions = schema.get("$defs", {})
    shapes = {}
    for name, prop in schema.get("properties", {}).items():
        shape = {k: v for k, v in prop.items() if k not in ("description", "title", "default", "examples")}
        ref = shape.get("$ref", "")
        if ref.startswith("#/$defs/"):
            shape = {"$ref": definitions[ref.removeprefix("#/$defs/")]}
        shapes[name] = shape
    return shapes


_UPPER_BOUNDS = ("maxItems", "maxLength", "maximum")


def _widened(before: object, now: object) -> bool:
    """`now` is `before` with more enum members (or a list of them allowed to grow with it), nothing else changed."""
    if isinstance(before, dict) and isinstance(now, dict):
        if before.keys() != now.keys():
            return False
        return all(
            set(b) <= set(n) if key == "enum" else b <= n if key in _UPPER_BOUNDS else b == n or _widened(b, n)
            for key, b, n in ((key, before[key], now[key]) for key in before)
        )
    return False


@pytest.mark.parametrize("message_type", sorted(MESSAGE_TYPES))
def test_message_schema_is_compatible_with_its_snapshot(message_type, request):
    schema = _schema(MESSAGE_TYPES[message_type])
    path = SNAPSHOTS / f"{message_type}.json"
    if not path.exists():
        if not request.config.getoption("--update-snapshots"):
            pytest.fail(f"{message_type} has no snapshot: run with --update-snapshots, then commit {path.name}")
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    snapshot = json.loads(path.read_text())

    before, now = _field_shapes(snapshot), _field_shapes(schema)
    removed = sorted(set(before) - set(now))
    assert not removed, (
        f"{message_type}: fields removed or renamed: {removed} (a breaking change needs a new topic version)"
    )
    retyped = sorted(name for name in before if before[name] != now[name] and not _widened(before[name], now[name]))
    assert not retyped, f"{message_type}: fields retyped: {retyped}"
    newly_required = sorted(set(schema.get("required", [])) - set(snapshot.get("required", [])))
    assert not newly_required, f"{message_type}: new required fields break older producers: {newly_required}"
