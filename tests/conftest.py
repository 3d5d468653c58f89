"""Options for every tier."""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        help="write the JSON-schema snapshots of messages that have none (tests/unit/snapshots), then commit them",
    )
