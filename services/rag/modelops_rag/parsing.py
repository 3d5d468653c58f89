"""A document's bytes as sections of plain text, each under its heading path (`Install > From source`), and for PDF
the page it comes from: the chunker keeps a chunk within one section so that every chunk knows where it sits."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from pypdf import PdfReader

HEADING_SEPARATOR = " > "
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_HTML_SKIPPED = {"script", "style", "noscript", "template", "head"}
_HTML_BLOCKS = {"p", "div", "li", "br", "tr", "pre", "section", "article", "blockquote", "dt", "dd", "table"}


class Unparseable(ValueError):
    """The bytes are not what their content type says (not UTF-8 text, not a readable PDF)."""


@dataclass(frozen=True)
class Section:
    heading: str
    text: str
    page: int | None = None


def sections_of(data: bytes, content_type: str) -> list[Section]:
    """The document's non-empty sections, in order."""
    if content_type == "application/pdf":
        found = _pdf(data)
    else:
        text = _decoded(data)
        if content_type == "text/markdown":
            found = _markdown(text)
        elif content_type == "text/html":
            found = _html(text)
        else:
            found = [Section("", text)]
    return [section for section in found if section.text.strip()]


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Unparseable(f"not UTF-8 text: {error}") from None


class _Headings:
    """The heading path as headings of each level arrive: a level-2 heading replaces the last level ≥ 2."""

    def __init__(self) -> None:
        self.levels: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> None:
        self.levels = [(lvl, t) for lvl, t in self.levels if lvl < level] + [(level, " ".join(title.split()))]

    @property
    def path(self) -> str:
        return HEADING_SEPARATOR.join(title for _, title in self.levels)


def _markdown(text: str) -> list[Section]:
    """ATX headings (`## Title`) outside code fences open sections; the text keeps its Markdown otherwise."""
    headings, fenced = _Headings(), False
    found: list[Section] = []
    lines: list[str] = []
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _MARKDOWN_HEADING.match(line)
        if heading:
            found.append(Section(headings.path, "\n".join(lines)))
            headings.enter(len(heading.group(1)), heading.group(2))
            lines = []
        else:
            lines.append(line)
    found.append(Section(headings.path, "\n".join(lines)))
    return found


class _HtmlSections(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings = _Headings()
        self.found: list[Section] = []
        self.parts: list[str] = []
        self.title: list[str] | None = None
        self.level = 0
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_SKIPPED:
            self.skipping += 1
        elif tag in _HTML_HEADINGS and not self.skipping:
            self._close_section()
            self.title, self.level = [], _HTML_HEADINGS[tag]
        elif tag in _HTML_BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _HTML_HEADINGS and self.title is not None:
            self.headings.enter(self.level, "".join(self.title))
            self.title = None
        elif tag in _HTML_BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        (self.title if self.title is not None else self.parts).append(data)

    def _close_section(self) -> None:
        text = re.sub(r"\n\s*\n+", "\n\n", "".join(self.parts))
        self.found.append(Section(self.headings.path, text.strip()))
        self.parts = []

    def sections(self) -> list[Section]:
        self.close()
        self._close_section()
        return self.found


def _html(text: str) -> list[Section]:
    parser = _HtmlSections()
    parser.feed(text)
    return parser.sections()


def _pdf(data: bytes) -> list[Section]:
    """One section per page: PDF text has no reliable headings, but it has pages, which a citation can name."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Unparseable("the PDF is encrypted")
        return [Section("", page.extract_text() or "", number) for number, page in enumerate(reader.pages, 1)]
    except Unparseable:
        raise
    except Exception as error:  # pypdf raises many kinds on a malformed file; any of them means "not readable"
        raise Unparseable(f"not a readable PDF: {type(error).__name__}: {error}") from None
