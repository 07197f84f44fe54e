"""The content hash covers the protocol and every file it refers to; bundles round-trip."""

from __future__ import annotations

import hashlib

import pytest

from study.protocol import ProtocolError, load_protocol
from study.protocol.bundle import from_bundle, to_bundle

from .conftest import MINIMAL, edit


@pytest.fixture
def protocol_file(protocol_dir):
    path = protocol_dir / "mini.yaml"
    path.write_text(MINIMAL)
    return path


def test_the_same_content_has_the_same_hash(protocol_file):
    assert load_protocol(protocol_file).content_hash == load_protocol(protocol_file).content_hash


def test_editing_the_constitution_changes_the_hash(protocol_file, protocol_dir):
    before = load_protocol(protocol_file)
    (protocol_dir / "constitution.md").write_text("# Constitution\n\nBe kind, and honest.\n")
    after = load_protocol(protocol_file)
    assert after.content_hash != before.content_hash
    assert after.source_text == before.source_text


def test_editing_the_consent_document_changes_the_hash(protocol_file, protocol_dir):
    before = load_protocol(protocol_file).content_hash
    (protocol_dir / "consent.md").write_text("# Consent v2\n")
    assert load_protocol(protocol_file).content_hash != before


def test_editing_the_protocol_changes_the_hash(protocol_file):
    before = load_protocol(protocol_file).content_hash
    protocol_file.write_text(edit(MINIMAL, "title: Mini trial", "title: Mini trial (amended)"))
    assert load_protocol(protocol_file).content_hash != before


def test_referenced_files_are_recorded_with_their_sha256(protocol_file, protocol_dir):
    protocol = load_protocol(protocol_file)
    constitution = protocol.referenced_files["constitution.md"]
    raw = (protocol_dir / "constitution.md").read_bytes()
    assert constitution.sha256 == hashlib.sha256(raw).hexdigest()
    assert set(protocol.referenced_files) == {"constitution.md", "consent.md"}


def test_a_bundle_reparses_without_the_files_on_disk(protocol_file, protocol_dir):
    protocol = load_protocol(protocol_file)
    bundle = to_bundle(protocol)
    for path in protocol_dir.iterdir():
        path.unlink()
    restored = from_bundle(bundle)
    assert restored.content_hash == protocol.content_hash
    assert restored.source_text == protocol.source_text
    assert restored.model == protocol.model
    assert restored.assistant_instructions("assisted") == protocol.assistant_instructions(
        "assisted"
    )


def test_a_tampered_bundle_is_refused(protocol_file):
    bundle = to_bundle(load_protocol(protocol_file))
    tampered = bundle.replace("Support the participant.", "Maximise engagement.")
    assert tampered != bundle
    with pytest.raises(ProtocolError, match="does not match its recorded hash"):
        from_bundle(tampered)


def test_line_endings_are_part_of_the_content(protocol_dir):
    unix = protocol_dir / "unix.yaml"
    windows = protocol_dir / "windows.yaml"
    unix.write_bytes(MINIMAL.encode())
    windows.write_bytes(MINIMAL.replace("\n", "\r\n").encode())
    assert load_protocol(unix).content_hash != load_protocol(windows).content_hash
    restored = from_bundle(to_bundle(load_protocol(windows)))
    assert restored.content_hash == load_protocol(windows).content_hash
