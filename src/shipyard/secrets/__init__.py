"""Secrets: references in config (env:, keyring:, file:), values in memory and in the environment
of the steps that ask for them, and redaction of anything Shipyard keeps. See docs/secrets.md."""

from shipyard.secrets.redact import MASK, MIN_LENGTH, RedactingFilter, Redactor
from shipyard.secrets.refs import SecretRef, SecretReference, parse_ref, resolve
from shipyard.secrets.scan import scan_for_values
from shipyard.secrets.store import Secrets

__all__ = [
    "MASK",
    "MIN_LENGTH",
    "RedactingFilter",
    "Redactor",
    "SecretRef",
    "SecretReference",
    "Secrets",
    "parse_ref",
    "resolve",
    "scan_for_values",
]
