"""GGUF imports through the gateway: the upload stored and ImportGguf sent with ids from the file's sha256 (the same
file again answers its import and sends nothing), a file without the GGUF magic refused with nothing kept, roles
checked, and the import's state projected from the trainer's outcome events. (The trainer's side, and the whole
import through the CLI, run in tests/e2e/test_main_flow.py.)"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
from helpers import TopicTap, consumed
from modelops_contracts import ImportGguf, ModelImported, ModelImportFailed
from modelops_contracts.catalog import MODEL_COMMANDS
from modelops_shared.bus import Bus
from modelops_shared.settings import Settings

from .conftest import RunningGateway
from .support import Key


@pytest.fixture(scope="module")
async def import_tap(embedded_stack: Settings) -> AsyncIterator[TopicTap]:
    async with TopicTap(embedded_stack, MODEL_COMMANDS) as tap:
        yield tap


def _gguf_bytes() -> bytes:
    """Not a loadable model, only what the gateway checks: the magic, then bytes unique to this test run."""
    return b"GGUF" + uuid.uuid4().bytes * 64


async def test_an_import_is_a_command_with_ids_from_the_file_and_the_same_file_answers_it_again(
    gateway: RunningGateway, keys: dict[str, Key], import_tap: TopicTap
) -> None:
    content = _gguf_bytes()
    digest = hashlib.sha256(content).hexdigest()[:24]
    files = {"file": ("tiny.gguf", content)}
    async with gateway.client(keys["viewer"].secret) as viewer, gateway.client(keys["developer"].secret) as dev:
        denied = await viewer.post("/v1/models/gguf", files=files)
        assert denied.status_code == 403, denied.text

        accepted = await dev.post("/v1/models/gguf", files=files, data={"source": "pypi:example==1.0"})
        assert accepted.status_code == 202, accepted.text
        view = accepted.json()
        assert (view["id"], view["status"], view["gguf_artifact_id"], view["base_model_artifact_id"]) == (
            f"imp-{digest}",
            "pending",
            f"gguf-{digest}",
            f"base-{digest}",
        )
        assert accepted.headers["Location"] == f"/v1/models/imports/imp-{digest}"

        (command,) = await import_tap.wait_for(view["id"], ImportGguf)
        assert (command.file.path, command.file.size, command.source) == (
            "tiny.gguf",
            len(content),
            "pypi:example==1.0",
        )
        assert command.requested_by == keys["developer"].name
        stored = gateway.store.key_of(command.uri) + "/tiny.gguf"
        assert await gateway.store.get(stored) == content

        again = await dev.post("/v1/models/gguf", files={"file": ("renamed.gguf", content)})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == view["id"]
        assert not [o for o in await gateway.store.list("imports/") if o.key.endswith("/renamed.gguf")]  # not kept
        read = await viewer.get(f"/v1/models/imports/{view['id']}")
        assert read.status_code == 200, read.text
        assert read.json() == view
    await import_tap.caught_up()
    assert len(import_tap.of(view["id"], ImportGguf)) == 1  # the second upload sent nothing


async def test_a_file_without_the_gguf_magic_is_refused_and_nothing_is_kept(
    gateway: RunningGateway, keys: dict[str, Key]
) -> None:
    before = {o.key for o in await gateway.store.list("imports/")}
    async with gateway.client(keys["developer"].secret) as dev:
        refused = await dev.post("/v1/models/gguf", files={"file": ("weights.bin", b"PK\x03\x04 a zip")})
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("/not-a-gguf")
    assert "weights.bin is not a GGUF file" in refused.json()["detail"]
    assert {o.key for o in await gateway.store.list("imports/")} == before


async def test_the_import_reads_what_the_trainer_reported(
    gateway: RunningGateway, keys: dict[str, Key], bus: Bus
) -> None:
    async with gateway.client(keys["developer"].secret) as dev:
        done = (await dev.post("/v1/models/gguf", files={"file": ("a.gguf", _gguf_bytes())})).json()
        failing = (await dev.post("/v1/models/gguf", files={"file": ("b.gguf", _gguf_bytes())})).json()
        envelopes = [
            await bus.publish(
                ModelImported(
                    import_id=done["id"],
                    name="smollm2-135m-instruct",
                    gguf_artifact_id=done["gguf_artifact_id"],
                    base_model_artifact_id=done["base_model_artifact_id"],
                    architecture="llama",
                    quantization="Q4_1",
                )
            ),
            await bus.publish(ModelImportFailed(import_id=failing["id"], reason="b.gguf is a gpt2 model")),
        ]
        await consumed(gateway.state.runtime.pool, envelopes)
        completed = (await dev.get(f"/v1/models/imports/{done['id']}")).json()
        failed = (await dev.get(f"/v1/models/imports/{failing['id']}")).json()
        missing = await dev.get(f"/v1/models/imports/imp-{'0' * 24}")
    assert (completed["status"], completed["name"], completed["reason"]) == ("completed", "smollm2-135m-instruct", None)
    assert (failed["status"], failed["reason"]) == ("failed", "b.gguf is a gpt2 model")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/import-not-found")
