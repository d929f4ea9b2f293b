"""Framing of SIP messages on a byte stream (RFC 3261 §18.3) with CRLF keep-alives.

On TCP and TLS, Content-Length delimits each message. A double CRLF between messages is a
keep-alive ping answered with a single CRLF pong (RFC 5626 §3.5.1); stray CRLFs are skipped
(§7.5).
"""

from __future__ import annotations

from softswitch.sip.errors import RemoteProtocolError

__all__ = ["PONG", "StreamFramer"]

PONG = b"\r\n"


class StreamFramer:
    """Cuts a byte stream into whole messages; bounded by ``max_size`` per message."""

    __slots__ = ("_buf", "max_size", "pings")

    def __init__(self, max_size: int = 65535) -> None:
        self._buf = bytearray()
        self.max_size = max_size
        #: keep-alive pings seen since the last ``feed`` (the adapter answers each with PONG)
        self.pings = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every complete message now available.

        Raises ``RemoteProtocolError`` when the stream cannot be framed (no or bad
        Content-Length, oversized message); the connection should then be closed.
        """
        buf = self._buf
        buf += data
        out: list[bytes] = []
        self.pings = 0
        while True:
            skipped = 0
            while buf.startswith(b"\r\n", skipped):
                skipped += 2
            if skipped:
                if skipped >= 4:
                    self.pings += 1
                del buf[:skipped]
            if not buf:
                break
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise RemoteProtocolError("header section too large", 513)
                break
            length = _content_length(bytes(buf[:end]))
            total = end + 4 + length
            if total > self.max_size:
                raise RemoteProtocolError("message too large", 513)
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = name.strip().lower()
        if key in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit():
                raise RemoteProtocolError("bad Content-Length on a stream")
            return int(text)
    raise RemoteProtocolError("missing Content-Length on a stream")  # §18.3: mandatory
