"""Consent documents: sections, version and hash, safe rendering, the signed copy."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from consent import load_document
from consent.document import PREAMBLE_TITLE, split_sections

from .conftest import EXAMPLES, amend


def test_the_example_document_is_split_at_its_level_two_headings(protocol):
    document = load_document(protocol)

    titles = [section.title for section in document.sections]
    assert titles[0] == document.title  # the text before the first `##`, titled by the `#`
    assert document.title.startswith("Participant information and consent")
    assert titles[1] == "1. Why are we doing this study?"
    assert "9. Withdrawing" in titles
    assert titles[-1] == "Consent"
    assert len(titles) == 13
    withdrawing = document.sections[titles.index("9. Withdrawing")]
    assert "<p>You can stop at any time" in withdrawing.html
    assert "##" not in "".join(section.html for section in document.sections)


def test_version_comes_from_the_protocol_and_the_hash_from_the_documents_text(protocol):
    document = load_document(protocol)

    text = (EXAMPLES / "consent/assistant-flourishing-rct-consent-v1.md").read_text()
    assert document.version == "1.0"
    assert document.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert [item.id for item in document.optional_items] == ["store_chat_content", "ema"]


def test_an_edited_document_has_another_hash(protocol, examples_copy):
    amended = amend(examples_copy, version="1.1", extra_text="A new paragraph.")

    assert load_document(amended).sha256 != load_document(protocol).sha256
    assert load_document(amended).version == "1.1"


def test_html_in_the_source_is_shown_as_text_and_unsafe_links_are_not_links():
    _, sections = split_sections(
        "## Risks\n<script>alert('x')</script>\n\n"
        '<img src=x onerror="alert(1)">\n\n'
        "[click](javascript:alert(1)) and [ethics](https://ethics.example.org)\n"
    )

    body = sections[0].html
    assert "<script" not in body and "&lt;script&gt;" in body
    assert "<img" not in body
    assert 'href="javascript:' not in body
    assert '<a href="https://ethics.example.org">ethics</a>' in body


def test_a_heading_inside_a_code_block_is_not_a_section_break():
    source = "# Title\n\nIntro.\n\n```\n## not a heading\n```\n## Real\nBody"
    title, sections = split_sections(source)

    assert title == "Title"
    assert [s.title for s in sections] == ["Title", "Real"]
    assert "## not a heading" in sections[0].html


def test_a_document_without_a_title_or_preamble():
    title, sections = split_sections("## Only\nText")
    assert title == ""
    assert [s.title for s in sections] == ["Only"]

    _, with_preamble = split_sections("Intro without a title.\n\n## Next\nMore")
    assert [s.title for s in with_preamble] == [PREAMBLE_TITLE, "Next"]


def test_heading_titles_are_plain_text():
    _, sections = split_sections("## What **we** store `chat`\nText")
    assert sections[0].title == "What we store chat"


def test_the_signed_copy_is_a_standalone_page_with_signature_date_and_choices(protocol):
    document = load_document(protocol)
    signed_at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

    page = document.as_html_copy(
        "P-7K3M9Q", "Ann <b>O'Neil</b>", signed_at, {"store_chat_content": False}
    )

    assert page.startswith("<!doctype html>")
    assert "Ann &lt;b&gt;O&#x27;Neil&lt;/b&gt;" in page
    assert "P-7K3M9Q" in page
    assert "02 March 2026, 09:30" in page and "2026-03-02T09:30:00+00:00" in page
    assert "version 1.0" in page and document.sha256 in page
    assert "text of my chats with the assistant may be stored" in page
    assert "<strong>No</strong>" in page
    assert "9. Withdrawing" in page
    assert "<script" not in page and "<link" not in page
