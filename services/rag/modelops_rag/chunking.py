"""Sections cut into chunks that fit the embedding model: token-counted by the model's own tokenizer, split at the
largest semantic boundary that fits (semantic-text-splitter: headings, paragraphs, sentences, words), overlapping by
a few tokens so that a sentence cut in two is whole in one of them. Each chunk carries its heading path, which is
embedded and indexed with its text: a chunk far down a section still says what it is about."""

from __future__ import annotations

from dataclasses import dataclass

from semantic_text_splitter import MarkdownSplitter
from tokenizers import Tokenizer

from .parsing import Section


@dataclass(frozen=True)
class Chunk:
    position: int
    heading: str
    text: str
    page: int | None

    @property
    def embedded_text(self) -> str:
        """What the model embeds and full-text search reads: the heading path, then the text."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


class Chunker:
    def __init__(self, tokenizer: Tokenizer, capacity: int, overlap: int) -> None:
        tokenizer = Tokenizer.from_str(tokenizer.to_str())  # a copy: truncation off without touching the caller's
        tokenizer.no_truncation()
        tokenizer.no_padding()
        # Markdown semantics also suit plain text and extracted HTML/PDF text: blank lines split paragraphs.
        self.splitter = MarkdownSplitter.from_huggingface_tokenizer(tokenizer, capacity, overlap)

    def chunks(self, sections: list[Section]) -> list[Chunk]:
        found: list[Chunk] = []
        for section in sections:
            for text in self.splitter.chunks(section.text):
                if text.strip():
                    found.append(Chunk(len(found), section.heading, text, section.page))
        return found
