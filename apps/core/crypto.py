"""Encryption of secrets at rest (provider credentials).

GATEWAY_ENCRYPTION_KEY holds one or more comma-separated keys: a Fernet key is
used as it is, any other string is stretched into one. The first key encrypts,
every key decrypts, so keys can be rotated.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _fernet_for(secret: str) -> Fernet:
    try:
        return Fernet(secret.encode())
    except ValueError:
        derived = hashlib.pbkdf2_hmac("sha256", secret.encode(), b"llm-gateway-credentials", 200_000)
        return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=4)
def _cipher(keys: str) -> MultiFernet:
    return MultiFernet([_fernet_for(part.strip()) for part in keys.split(",") if part.strip()])


def encrypt(plaintext: str) -> str:
    return _cipher(settings.GATEWAY_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _cipher(settings.GATEWAY_ENCRYPTION_KEY).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "a stored credential cannot be decrypted: GATEWAY_ENCRYPTION_KEY does not match"
        ) from exc


def decrypt_recent(ciphertext: str, *, max_age: int) -> str:
    """A value encrypted here at most `max_age` seconds ago (a token an admin form carries between
    two steps). ValueError when older, altered, or not encrypted by this gateway."""
    try:
        return _cipher(settings.GATEWAY_ENCRYPTION_KEY).decrypt(ciphertext.encode(), ttl=max_age).decode()
    except InvalidToken as exc:
        raise ValueError("expired, altered, or not encrypted by this gateway") from exc
