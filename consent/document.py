"""Consent documents: the protocol's versioned Markdown, split into sections and rendered safely.

The document is the participant information sheet plus the consent statement. It is written by
the study team, but it is still rendered with raw HTML disabled (anything that looks like a tag
is shown as text) and only safe link schemes, so a protocol file can never inject script into
the participant's page or into the signed copy they download.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from markdown_it import MarkdownIt
from markdown_it.token import Token

from study.protocol import Protocol

PREAMBLE_TITLE = "About this study"


class ConsentSection(NamedTuple):
    """One `##` section of the document: its plain-text title and its body as safe HTML."""

    title: str
    html: str


@dataclass(frozen=True)
class OptionalItem:
    """An optional consent item (e.g. `store_chat_content`) with its text per language."""

    id: str
    text: Mapping[str, str]
    default: bool = False

    def text_in(self, language: str) -> str:
        return self.text.get(language) or self.text.get("en") or next(iter(self.text.values()))


@dataclass(frozen=True)
class ConsentDocument:
    """A consent document as shown to participants and as recorded with each signature.

    `version` is the protocol's `consent.version`; `sha256` is the hash of the document's text,
    so a consent record proves exactly which words the participant agreed to.
    """

    title: str
    version: str
    sha256: str
    sections: list[ConsentSection]
    study_title: str = ""
    study_slug: str = ""
    optional_items: tuple[OptionalItem, ...] = field(default_factory=tuple)

    def as_html_copy(
        self,
        participant_code: str,
        signed_name: str,
        signed_at: datetime,
        options: Mapping[str, bool],
        *,
        language: str = "en",
    ) -> str:
        """A standalone HTML page of the signed consent for the participant to keep.

        It holds the whole document, its version and hash, the typed-name signature with its
        date (UTC), and the participant's answer to each optional item. It needs no other file
        and runs no script, so it opens the same way in a browser years later.
        """
        e = html.escape
        signed_utc = signed_at.astimezone(UTC)
        parts = [
            "<!doctype html>",
            f'<html lang="{e(language)}">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Signed consent: {e(self.study_title or self.title)}</title>",
            f"<style>{_COPY_CSS}</style>",
            "</head>",
            "<body>",
            "<main>",
            f"<h1>{e(self.title)}</h1>",
            '<p class="meta">',
            f"Study: {e(self.study_title)} ({e(self.study_slug)})<br>",
            f"Consent document version {e(self.version)}<br>",
            f"Document SHA-256: <code>{e(self.sha256)}</code>",
            "</p>",
        ]
        for section in self.sections:
            parts.append("<section>")
            parts.append(f"<h2>{e(section.title)}</h2>")
            parts.append(section.html)
            parts.append("</section>")
        parts.append('<section class="signature">')
        parts.append("<h2>Your consent</h2>")
        if self.optional_items:
            parts.append("<ul>")
            for item in self.optional_items:
                answer = "Yes" if options.get(item.id) else "No"
                parts.append(
                    f"<li>{e(item.text_in(language))} <strong>{answer}</strong> "
                    f"<code>{e(item.id)}</code></li>"
                )
            parts.append("</ul>")
        parts.append("<dl>")
        parts.append(f"<dt>Signed (typed name)</dt><dd>{e(signed_name)}</dd>")
        parts.append(
            f"<dt>Date</dt><dd>{e(signed_utc.strftime('%d %B %Y, %H:%M'))} UTC "
            f'(<time datetime="{e(signed_utc.isoformat())}">'
            f"{e(signed_utc.isoformat())}</time>)</dd>"
        )
        parts.append(f"<dt>Participant code</dt><dd><code>{e(participant_code)}</code></dd>")
        parts.append("</dl>")
        parts.append("</section>")
        parts.extend(["</main>", "</body>", "</html>", ""])
        return "\n".join(parts)


_COPY_CSS = (
    "body{font-family:system-ui,sans-serif;line-height:1.5;color:#1d2433;margin:0}"
    "main{max-width:42rem;margin:0 auto;padding:1rem}"
    ".meta{color:#5b6478}code{font-size:.85em;word-break:break-all}"
    ".signature{border-top:2px solid #2f6f4f;margin-top:2rem}"
    "dt{font-weight:600}dd{margin:0 0 .5rem}"
)


def markdown_renderer() -> MarkdownIt:
    """CommonMark with tables; raw HTML is escaped, links are limited to safe schemes."""
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def load_document(protocol: Protocol) -> ConsentDocument:
    """The consent document the protocol names, split at its `##` headings.

    Text before the first `##` heading becomes the first section, titled by the document's
    `#` heading if it has one. A heading inside a code block is not a section break, because
    the split works on the parsed document rather than on lines.
    """
    spec = protocol.model.consent
    text = protocol.file_text(spec.document)
    title, sections = split_sections(text)
    return ConsentDocument(
        title=title
        or protocol.model.study.title_for_participants(protocol.model.study.default_language),
        version=spec.version,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        sections=sections,
        study_title=protocol.model.study.title_for_participants(
            protocol.model.study.default_language
        ),
        study_slug=protocol.model.study.slug,
        optional_items=tuple(
            OptionalItem(item.id, dict(item.text), item.default) for item in spec.optional_items
        ),
    )


def split_sections(text: str) -> tuple[str, list[ConsentSection]]:
    """The `#` title (or '') and the `##` sections of Markdown `text`, rendered to HTML."""
    md = markdown_renderer()
    env: dict = {}
    tokens = md.parse(text, env)
    title = ""
    preamble: list[Token] = []
    sections: list[tuple[str, list[Token]]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "heading_open" and token.level == 0 and token.tag in ("h1", "h2"):
            heading = _plain_text(tokens[index + 1])
            index += 3  # heading_open, inline, heading_close
            if token.tag == "h1" and not title and not sections:
                title = heading
            elif token.tag == "h2":
                sections.append((heading, []))
            else:
                (sections[-1][1] if sections else preamble).extend(tokens[index - 3 : index])
            continue
        (sections[-1][1] if sections else preamble).append(token)
        index += 1
    rendered = []
    if preamble:
        rendered.append(
            ConsentSection(title or PREAMBLE_TITLE, md.renderer.render(preamble, md.options, env))
        )
    for heading, body in sections:
        rendered.append(ConsentSection(heading, md.renderer.render(body, md.options, env)))
    return title, rendered


def _plain_text(inline: Token) -> str:
    """The text of a heading without its Markdown markup (titles are escaped by templates)."""
    pieces = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            pieces.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            pieces.append(" ")
    return "".join(pieces).strip() or inline.content.strip()
