"""Random keys that are handed out once and stored only as digests (API tokens,
invitation tokens): a copy of the database yields nothing that authenticates.

SHA-256 without a salt is enough here: a key is 160 random bits, so the digest cannot be
reversed or guessed, and an unsalted digest is what lets a key be found with one
indexed lookup."""

import hashlib
import secrets

KEY_BYTES = 20


def generate_key() -> str:
    """A new key: 40 hex characters, like DRF's own tokens."""
    return secrets.token_hex(KEY_BYTES)


def digest_of(key: str) -> str:
    """The stored form of a key (64 hex characters). Any text has a digest, so a malformed
    key simply matches nothing."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
