"""Field-level encryption of personal text (chat messages, conversation, learning-path and calendar titles,
e-mail addresses) with
a versioned key ring, so a key can be rotated while rows written under older keys stay readable.
E-mail lookups use a blind index: an HMAC of the normalised address under a key derived from the
ring's oldest entry.

``CHATWIZARD_FIELD_KEYS`` is a comma-separated ring of ``<version>:<base64 of 32 random bytes>``; the
first entry encrypts, every entry decrypts. Values are AES-256-GCM with a random 96-bit nonce and the
column's name as associated data (a value copied into another column does not decrypt), stored as
``enc:<version>:<base64 nonce+ciphertext>``. Text without that prefix predates encryption and is
returned as is (``chatwizard reencrypt`` encrypts it). Without a ring nothing personal is written at
all: encrypting (and the blind index) refuse, so no row is ever stored in plain text because of the
way it was created (the app refuses to start without a ring; the CLI says what is missing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:"
NONCE_BYTES = 12
# Encrypted columns as table.column, which is also the associated data bound to their values.
ENCRYPTED_COLUMNS = ("users.email", "conversations.title", "messages.content", "learning_paths.title",
                     "calendar_sessions.title", "sign_in_links.email")
NO_RING = ("CHATWIZARD_FIELD_KEYS is not set: personal data is never stored unencrypted; make a ring "
           "with `chatwizard field-key v1` (the local estate keeps one in .estate/field-keys)")


class FieldKeyError(ValueError):
    """The key ring is malformed, or a value was written under a key no longer in it."""


def parse_ring(ring: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for entry in filter(None, (e.strip() for e in ring.split(","))):
        version, _, encoded = entry.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            key = b""
        if not version.isalnum() or len(key) != 32:
            raise FieldKeyError(f"CHATWIZARD_FIELD_KEYS entry {version or '?'!r} must be "
                                "<version>:<base64 of 32 bytes>")
        keys[version] = key
    return keys


def new_key_entry(version: str) -> str:
    return f"{version}:{base64.b64encode(os.urandom(32)).decode()}"


class FieldCipher:
    def __init__(self, ring: str | None) -> None:
        raw = parse_ring(ring or "")
        self.keys = {version: AESGCM(key) for version, key in raw.items()}
        self.current = next(iter(self.keys), None)
        # The blind index is keyed by the oldest entry, so putting a new key in front leaves it unchanged.
        oldest = list(raw.values())[-1] if raw else b""
        self.index_key = hashlib.sha256(b"chatwizard blind index\0" + oldest).digest()

    def blind_index(self, value: str, field: str) -> bytes:
        """Keyed hash of the normalised value: equality lookups and uniqueness on an encrypted column."""
        if self.current is None:
            raise FieldKeyError(NO_RING)
        normal = value.strip().lower()
        return hmac.new(self.index_key, f"{field}\0{normal}".encode(), hashlib.sha256).digest()

    def readable(self, row: Any, table: str) -> dict[str, Any]:
        """A row of ``table`` with its encrypted columns decrypted."""
        out = dict(row)
        for field in ENCRYPTED_COLUMNS:
            owner, _, column = field.partition(".")
            if owner == table and isinstance(out.get(column), str):
                out[column] = self.decrypt(out[column], field)
        return out

    def encrypt(self, text: str, field: str) -> str:
        if self.current is None:
            raise FieldKeyError(NO_RING)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.keys[self.current].encrypt(nonce, text.encode(), field.encode())
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, value: str, field: str) -> str:
        if not value.startswith(PREFIX):  # written before encryption
            return value
        version, _, encoded = value.removeprefix(PREFIX).partition(":")
        key = self.keys.get(version)
        if key is None:
            raise FieldKeyError(f"{field} was encrypted with key {version!r}, which is not in the ring")
        raw = base64.b64decode(encoded)
        try:
            return key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], field.encode()).decode()
        except InvalidTag:
            raise FieldKeyError(f"{field}: value does not decrypt with key {version!r}") from None
