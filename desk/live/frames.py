"""An update as it travels to boards: its HTML, and the websocket frame bytes that carry it.

The hub hands the same update to many boards. Building the frame (UTF-8 encoding plus the
RFC 6455 §5.2 header: FIN, opcode 1 "text", the payload length; a server's frames are never
masked) once per update instead of once per board is what ``Frame.wire`` is for; each
board's handler writes those bytes to its socket (``desk.live.views``). That is only right
while no extension (permessage-deflate, ``DESK_WS_COMPRESSION``) changes the payload per
connection; the handler falls back to the websocket library's own send then.
"""

from __future__ import annotations

import struct


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked text frame (RFC 6455 §5.2) carrying ``text``."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class Frame(str):
    """An update's HTML (it is the string) that builds its frame bytes once, when first
    asked, for every board it goes to. Two threads asking at once both build the same
    bytes; either result is kept."""

    _wire: bytes | None = None

    def wire(self) -> bytes:
        wire = self._wire
        if wire is None:
            wire = self._wire = text_frame(self)
        return wire
