"""Field-level encryption of personal text (chat messages, conversation titles) with a versioned key
ring, so a key can be rotated while rows written under older keys stay readable.

``CHATWIZARD_FIELD_KEYS`` is a comma-separated ring of ``<version>:<base64 of 32 random bytes>``; the
first entry encrypts, every entry decrypts. Values are AES-256-GCM with a random 96-bit nonce and the
column's name as associated data (a value copied into another column does not decrypt), stored as
``enc:<version>:<base64 nonce+ciphertext>``. Text without that prefix predates encryption and is
returned as is. Without a ring (development and tests only; settings refuse that in staging and
production) values are stored in plain text.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:"
NONCE_BYTES = 12


class FieldKeyError(ValueError):
    """The key ring is malformed, or a value was written under a key no longer in it."""


def parse_ring(ring: str) -> dict[str, AESGCM]:
    keys: dict[str, AESGCM] = {}
    for entry in filter(None, (e.strip() for e in ring.split(","))):
        version, _, encoded = entry.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            key = b""
        if not version.isalnum() or len(key) != 32:
            raise FieldKeyError(f"CHATWIZARD_FIELD_KEYS entry {version or '?'!r} must be "
                                "<version>:<base64 of 32 bytes>")
        keys[version] = AESGCM(key)
    return keys


def new_key_entry(version: str) -> str:
    return f"{version}:{base64.b64encode(os.urandom(32)).decode()}"


class FieldCipher:
    def __init__(self, ring: str | None) -> None:
        self.keys = parse_ring(ring or "")
        self.current = next(iter(self.keys), None)

    def encrypt(self, text: str, field: str) -> str:
        if self.current is None:
            return text
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.keys[self.current].encrypt(nonce, text.encode(), field.encode())
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, value: str, field: str) -> str:
        if not value.startswith(PREFIX) or not self.keys:  # no ring: nothing was encrypted
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
