"""Consent documents, the eConsent flow's domain logic, re-consent, withdrawal and erasure."""
