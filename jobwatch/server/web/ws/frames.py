"""WebSocket text frames built once per event, for every subscriber.

A server's frames are unmasked (RFC 6455, 5.1), so an event's frame is the same
bytes on every connection that did not negotiate an extension: the broker's
fan-out frames each event once (:func:`frame_once`) and writes those bytes to
every plain connection. A connection that negotiated permessage-deflate
(browsers offer it; simple-websocket accepts it) compresses with its own
context, so its frames are still built by its own wsproto connection.
"""

from __future__ import annotations

import struct
from typing import Any

_last: tuple[bytes, bytes] = (b"", b"\x81\x00")
"""The last message framed by :func:`frame_once` and its frame."""


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (opcode 1) holding ``payload`` (UTF-8 text),
    byte for byte what wsproto writes for the same message without extensions."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def frame_once(message: bytes) -> bytes:
    """:func:`text_frame` of ``message``, built once while the same object is passed
    again (the broker hands one ``bytes`` object to every subscriber of an event)."""
    global _last
    last = _last  # one read: another thread may replace it meanwhile
    if last[0] is message:
        return last[1]
    frame = text_frame(message)
    _last = (message, frame)
    return frame


def plain_frames(ws: Any) -> bool:
    """Whether the simple-websocket connection ``ws`` negotiated no extension, so
    :func:`text_frame` bytes are what its own ``send`` would write."""
    proto = getattr(getattr(getattr(ws, "ws", None), "connection", None), "_proto", None)
    return proto is not None and not getattr(proto, "extensions", True)
