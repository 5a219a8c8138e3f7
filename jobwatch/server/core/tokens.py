"""Tokens as text: making them, hashing them for storage, and signing share links.

A stored token reads ``jw_<id>_<secret>``: ``id`` (16 hex digits) is public,
what lists show and revoking names; ``secret`` is 256 random bits. Only
:func:`token_hash` of the whole token is stored, so a copy of the database
lets no one act as a tenant.

A share link's token reads ``jws_<signed>``: ``signed`` is an itsdangerous
signature (HMAC-SHA1 over a key derived from the server's secret key) of
``{"i": link id, "j": job id, "e": expiry}``; a forged or changed one fails
the signature before the store is asked, and revoking the link (its id is
stored like any token) or its expiry ends it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

__all__ = [
    "SHARE_PREFIX",
    "TOKEN_PREFIX",
    "ShareClaim",
    "ShareSigner",
    "hashes_equal",
    "new_token",
    "new_token_id",
    "stored_token_id",
    "token_hash",
]

TOKEN_PREFIX = "jw_"
"""Start of a stored token."""
SHARE_PREFIX = "jws_"
"""Start of a share link's token."""
_ID_HEX = 16


def new_token_id() -> str:
    """A fresh public token id: 16 hex digits (64 random bits, unique enough to name)."""
    return secrets.token_hex(_ID_HEX // 2)


def new_token(token_id: str) -> str:
    """A fresh secret token named ``token_id``: ``jw_<id>_<43 URL-safe characters>``
    (256 random bits, from :mod:`secrets`)."""
    return f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def stored_token_id(token: str) -> str | None:
    """The id a token of the stored form names, or ``None`` if it has another form."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not secret or len(token_id) != _ID_HEX:
        return None
    if any(c not in "0123456789abcdef" for c in token_id):
        return None
    return token_id


def token_hash(token: str) -> str:
    """The hex SHA-256 of ``token``, which is all the store keeps of it.

    A fast hash is enough here, unlike for passwords: bcrypt and argon2 are
    slow to make guessing a low-entropy secret costly, but these tokens are 256
    random bits, which no number of guesses finds; a slow hash would only slow
    every request down.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hashes_equal(a: str, b: str) -> bool:
    """Compare two hashes (or tokens) in constant time (:func:`hmac.compare_digest`)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


@dataclass(frozen=True)
class ShareClaim:
    """What a valid share token says: its ``link_id`` (a stored token id), the
    ``job_id`` it opens and when it expires (``expires_at``, seconds since the epoch)."""

    link_id: str
    job_id: str
    expires_at: float


class ShareSigner:
    """Signs and checks share tokens with the server's secret key.

    Parameters
    ----------
    secret_key:
        The key every server process shares (the store keeps it).
    """

    SALT = "jobwatch.share-link"

    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt=self.SALT)

    def sign(self, claim: ShareClaim) -> str:
        """The share token for ``claim``: ``jws_`` and the signed claim."""
        body = {"i": claim.link_id, "j": claim.job_id, "e": claim.expires_at}
        return SHARE_PREFIX + self._serializer.dumps(body)

    def claim(self, token: str) -> ShareClaim | None:
        """The claim of a share token with a good signature, else ``None``
        (expiry and revocation are the caller's to check)."""
        if not token.startswith(SHARE_PREFIX):
            return None
        try:
            body: Any = self._serializer.loads(token[len(SHARE_PREFIX) :])
        except BadSignature:
            return None
        if not isinstance(body, dict):
            return None
        link_id, job_id, expires = body.get("i"), body.get("j"), body.get("e")
        if not isinstance(link_id, str) or not isinstance(job_id, str):
            return None
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            return None
        return ShareClaim(link_id, job_id, float(expires))
