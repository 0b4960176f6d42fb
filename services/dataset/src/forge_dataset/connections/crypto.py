"""Connection secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from the service's
`FORGE_DATASET_CONNECTIONS_KEY`, each sealed with its tenant and connection id as associated data, so a
ciphertext copied into another row (another tenant's) does not open."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from forge_kit.errors import Unavailable

FORMAT = b"\x01"
"""The first byte of every sealed secret: AES-256-GCM, a 12-byte nonce, then the ciphertext and tag."""
MIN_KEY_CHARS = 16


class SecretBox:
    """Seals and opens connection secrets; its key never appears in a repr or a log."""

    def __init__(self, key: str) -> None:
        self._aead: AESGCM | None = None
        if key:
            if len(key) < MIN_KEY_CHARS:
                raise ValueError(f"the connections key must have at least {MIN_KEY_CHARS} characters")
            derived = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"forge-dataset-connections-v1"
            ).derive(key.encode())
            self._aead = AESGCM(derived)

    def __repr__(self) -> str:
        return f"SecretBox(configured={self._aead is not None})"

    @property
    def configured(self) -> bool:
        return self._aead is not None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            raise Unavailable(
                "connections are not configured: the dataset service has no FORGE_DATASET_CONNECTIONS_KEY"
            )
        return self._aead

    def seal(self, secret: str, context: str) -> bytes:
        """`secret` encrypted, bound to `context` (tenant and connection id)."""
        nonce = os.urandom(12)
        return FORMAT + nonce + self._cipher().encrypt(nonce, secret.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        """The secret sealed for `context`; Unavailable when the key changed (or the row was moved)."""
        cipher = self._cipher()
        if sealed[:1] != FORMAT:
            raise Unavailable("the connection's secret is in an unknown format")
        try:
            return cipher.decrypt(sealed[1:13], sealed[13:], context.encode()).decode()
        except InvalidTag:
            raise Unavailable(
                "the connection's secret cannot be decrypted (was the connections key changed?)"
            ) from None
