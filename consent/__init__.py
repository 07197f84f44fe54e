"""Consent documents, the eConsent flow's domain logic, re-consent, withdrawal and erasure.

    document = load_document(protocol)            # versioned Markdown, sections as safe HTML
    wrong = check_comprehension(protocol, answers)
    consent = sign(session, vault, participant=p, protocol=protocol, signed_name="...",
                   options={"store_chat_content": True}, now=now, actor="participant:P-...")
    needs_reconsent(session, p, protocol)         # after an amended consent document
    withdraw(session, participant=p, protocol=protocol, now=now, actor=..., by="coordinator")
    export_subject(session, vault, p, actor=...)  # everything held on one person, JSON-ready
    erase_subject(session, participant=p, now=now, actor=...); purge_erased_residues(engine)

Functions add to the caller's session and never commit. See docs/consent.md.
"""

from .document import ConsentDocument, ConsentSection, OptionalItem, load_document
from .signing import (
    ConsentError,
    check_comprehension,
    consent_history,
    current_consent,
    needs_reconsent,
    sign,
    version_at,
    version_in_force,
)
from .subject import (
    ErasureError,
    ErasureReport,
    erase_subject,
    export_subject,
    purge_erased_residues,
)
from .withdrawal import WithdrawalResult, withdraw

__all__ = [
    "ConsentDocument",
    "ConsentError",
    "ConsentSection",
    "ErasureError",
    "ErasureReport",
    "OptionalItem",
    "WithdrawalResult",
    "check_comprehension",
    "consent_history",
    "current_consent",
    "erase_subject",
    "export_subject",
    "load_document",
    "needs_reconsent",
    "purge_erased_residues",
    "sign",
    "version_at",
    "version_in_force",
    "withdraw",
]
