"""Options for every tier, and one scratch folder per test session: every temporary file or folder the session makes
— pytest's own, the services' artifact caches, the processes it starts — lands under it, and it is removed when the
session ends, so that nothing accumulates on the machine from one run to the next (a cached SmolLM2 is ~0.8 GB)."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SCRATCH_KEY = pytest.StashKey[tuple[Path, str | None, str | None]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        help="write the JSON-schema snapshots of messages that have none (tests/unit/snapshots), then commit them",
    )


def pytest_configure(config: pytest.Config) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="modelops-tests-"))
    config.stash[_SCRATCH_KEY] = (scratch, tempfile.tempdir, os.environ.get("TMPDIR"))
    tempfile.tempdir = str(scratch)
    os.environ["TMPDIR"] = str(scratch)  # and the processes the tests start


def pytest_unconfigure(config: pytest.Config) -> None:
    scratch, tempdir, tmpdir_env = config.stash[_SCRATCH_KEY]
    tempfile.tempdir = tempdir
    if tmpdir_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = tmpdir_env
    shutil.rmtree(scratch, ignore_errors=True)
