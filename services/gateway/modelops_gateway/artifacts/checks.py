"""What a base model directory must hold to be trained on and served — a config, weights and a tokenizer at its
root — checked at import, so that a missing piece is a 422 naming it instead of a failure at training time; and
whether its tokenizer has a chat template, recorded for the jobs that train on chat rows."""

from __future__ import annotations

import json
from fnmatch import fnmatch

from modelops_shared.errors import Invalid

WEIGHTS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZERS = ({"tokenizer.json"}, {"tokenizer.model"}, {"vocab.json", "merges.txt"}, {"vocab.txt"})
CHAT_TEMPLATE_FILES = {"chat_template.jinja", "chat_template.json"}
TOKENIZER_CONFIG = "tokenizer_config.json"


class IncompleteBaseModel(Invalid):
    slug = "incomplete-base-model"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"a base model directory needs {'; '.join(missing)}", missing=missing)


def check_base_model(paths: set[str]) -> None:
    """IncompleteBaseModel naming every missing piece (Hugging Face keeps them at the directory's root)."""
    root = {path for path in paths if "/" not in path}
    missing = []
    if "config.json" not in root:
        missing.append("a config (config.json)")
    if not any(fnmatch(path, pattern) for path in root for pattern in WEIGHTS):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if not any(files <= root for files in TOKENIZERS):
        missing.append("a tokenizer (tokenizer.json, tokenizer.model, vocab.json with merges.txt, or vocab.txt)")
    if missing:
        raise IncompleteBaseModel(missing)


def check_embedding_model(paths: set[str]) -> None:
    """A sentence-transformers directory: a base model's pieces plus `modules.json`, which says how to pool."""
    missing = [] if "modules.json" in paths else ["a sentence-transformers modules.json"]
    try:
        check_base_model(paths)
    except IncompleteBaseModel as error:
        missing += error.extensions["missing"]
    if missing:
        raise IncompleteBaseModel(missing)


def has_chat_template(paths: set[str], tokenizer_config: bytes | None) -> bool:
    """A template file beside the tokenizer (transformers ≥ 4.43 writes one), or one inside tokenizer_config.json."""
    if CHAT_TEMPLATE_FILES & paths:
        return True
    try:
        return bool(tokenizer_config and json.loads(tokenizer_config).get("chat_template"))
    except (ValueError, AttributeError):
        return False
