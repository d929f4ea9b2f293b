"""Small builders of raw SIP messages for the unit tests."""

from __future__ import annotations


def invite(
    branch: str = "z9hG4bKabc",
    *,
    cseq: int = 1,
    call_id: str = "c1@h",
    host: str = "10.0.0.1",
    port: int = 5070,
    to_tag: str = "",
) -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"INVITE sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.com>;tag=a1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:alice@{host}:{port}>\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def request(
    method: str,
    branch: str = "z9hG4bKnon",
    *,
    cseq: int = 1,
    call_id: str = "c1@h",
    host: str = "10.0.0.1",
    port: int = 5070,
    to_tag: str = "",
) -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.com>;tag=a1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def response_to(raw_request: bytes, status: int, reason: str = "X", to_tag: str = "b1") -> bytes:
    """Build a response from the request bytes (copies Via/From/To/Call-ID/CSeq)."""
    head = raw_request.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")[1:]
    keep = []
    for line in lines:
        name = line.split(":", 1)[0].lower()
        if name == "to" and to_tag and "tag=" not in line:
            line += f";tag={to_tag}"
        if name in ("via", "from", "to", "call-id", "cseq"):
            keep.append(line)
    return (
        f"SIP/2.0 {status} {reason}\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
    ).encode()
