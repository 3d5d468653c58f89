"""The embedded default base model: a tiny Llama-architecture model and a BPE tokenizer with a chat template, built
from a seed (no weights can be downloaded here), stored under artifacts/<id>/ and submitted to the registry.

The same seed gives byte-identical files, hence the same artifact id: running the bootstrap again is a no-op."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import torch
from modelops_contracts import ArtifactKind, ArtifactSubmitted
from modelops_shared.artifact_upload import digest_directory, upload_directory
from modelops_shared.storage import ObjectStore
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from .corpus import sentences

BASE_NAME = "tiny-llama"
VOCAB_SIZE = 8000
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
# Every message ends with eos, so an assistant turn teaches the model where to stop; rendering is incremental
# (a prefix of the conversation renders to a prefix of the text), which the trainer's loss masking relies on.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_base_model(directory: Path, seed: int = 0) -> None:
    """Write config, weights and tokenizer of the tiny model to `directory` (hidden 256, 4 layers, 4 heads, 7.5M)."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        sentences(seed),
        trainers.BpeTrainer(
            vocab_size=VOCAB_SIZE,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            min_frequency=2,
            show_progress=False,
        ),
    )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
    )
    fast.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=256,
        intermediate_size=768,  # a multiple of 256, so GGUF K-quants can block it
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.save_pretrained(directory)


async def submit_base_model(
    store: ObjectStore, directory: Path, *, name: str, created_by: str, seed: int
) -> ArtifactSubmitted:
    """Upload the model's files under artifacts/<id>/ (id from their digests) and describe the submission."""
    content = hashlib.sha256()
    for digest in await asyncio.to_thread(digest_directory, directory):
        content.update(f"{digest.path}\0{digest.sha256}\n".encode())
    artifact_id = f"{name}-{content.hexdigest()[:16]}"
    prefix = f"artifacts/{artifact_id}"
    digests = await upload_directory(store, directory, prefix)
    return ArtifactSubmitted(
        artifact_id=artifact_id,
        kind=ArtifactKind.BASE_MODEL,
        name=name,
        uri=store.url_of(prefix),
        files=digests,
        created_by=created_by,
        metadata={
            "architecture": "LlamaForCausalLM",
            "seed": seed,
            "source": "modelops_trainer bootstrap-base",
            "chat_template": True,
        },
    )
