"""Job text of bounded size, for places that show many jobs at once."""

from __future__ import annotations

__all__ = ["ELLIPSIS", "bounded_text"]

ELLIPSIS = "…"
"""What ends text that was cut (U+2026, 3 bytes in UTF-8)."""


def bounded_text(text: str | None, limit: int = 256) -> str | None:
    """``text`` in at most ``limit`` UTF-8 bytes: as it is when it fits, else its
    longest beginning that fits with :data:`ELLIPSIS` after it, cut between
    characters (never inside one). ``None`` stays ``None``.

    Raises
    ------
    ValueError
        ``limit`` is under 4 bytes (room for one character and the ellipsis).
    """
    if limit < 4:
        raise ValueError(f"limit must be at least 4 bytes, got {limit}")
    if text is None or len(text) * 4 <= limit:
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return text
    keep = encoded[: limit - len(ELLIPSIS.encode())].decode("utf-8", "ignore")
    return keep + ELLIPSIS
