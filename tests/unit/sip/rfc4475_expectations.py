"""What RFC 4475 (SIP torture test messages) expects of each of its 49 messages.

One entry per file in ``tests/data/rfc4475/``. Two outcomes are recorded:

``parser``
    what ``parse_message`` does with the bytes: ``"parses"``; ``"rejects"`` (a request:
    ``MalformedMessage`` whose ``status`` is ``parser_status`` and whose ``error_response()``
    is that response); or ``"drops"`` (a response: ``MalformedMessage`` with ``is_request``
    False and no response to send, RFC 3261 §18.1.2).

``switch``
    the final status the running switch answers the request with, which for several messages
    is decided above the parser (416 unknown scheme, 420 Require, 415 Content-Type, 483
    Max-Forwards, 401 authentication, 406 Accept, 400 for a registrar). ``None`` means the RFC
    mandates no particular status: the request takes its normal course (it must not be
    rejected as malformed), or, for a response, nothing at all is sent back.

Where the RFC allows either leniency or rejection, the choice made here is said in ``note``.
The unit tests (``test_rfc4475.py``) check the parser column; an integration test can import
``EXPECTATIONS`` and send each message to a running switch to check the ``switch`` column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "rfc4475"


@dataclass(frozen=True, slots=True)
class Expectation:
    section: str  # RFC 4475 section number
    title: str  # the section title
    rfc: str  # what the RFC says an element does with it (paraphrased, one line)
    kind: Literal["request", "response"]
    parser: Literal["parses", "rejects", "drops"]
    parser_status: int | None  # the MalformedMessage status when the parser rejects
    switch: int | None  # the final status the switch answers; None: see the module docstring
    layer: str  # the layer that decides the switch's answer
    note: str = ""  # the choice made where the RFC leaves one


def message_bytes(name: str) -> bytes:
    """The raw bytes of torture message ``name`` (byte-exact copy of the RFC 4475 archive)."""
    return (DATA_DIR / f"{name}.dat").read_bytes()


_E = Expectation

EXPECTATIONS: dict[str, Expectation] = {
    # -- 3.1.1 Parser tests: valid messages --------------------------------------------------
    "wsinv": _E(
        "3.1.1.1", "A Short Tortuous INVITE",
        "Folding, escaped quotes, LWS everywhere, compact and long names mixed, unknown "
        "headers and parameters, leading zeros: all elements treat it as well formed.",
        "request", "parses", None, None, "parser"),
    "intmeth": _E(
        "3.1.1.2", "Wide Range of Valid Characters",
        "Unusual but legal characters in the method, Request-URI, display names, parameters, "
        "Call-ID and an extension header: a well-formed request.",
        "request", "parses", None, 501, "uas",
        "the method is unknown to the switch, so its UAS answers 501 (RFC 3261 §21.5.2)"),
    "esc01": _E(
        "3.1.1.3", "Valid Use of the % Escaping Mechanism",
        "Escaped characters in the Request-URI user, To, From and Contact URIs are legal; the "
        "To user unescapes to 'user' and the Request-URI user to 'sips:user@example.com'.",
        "request", "parses", None, None, "parser"),
    "escnull": _E(
        "3.1.1.4", "Escaped Nulls in URIs",
        "Escaped NULs in user parts are well formed; unescaping must not shorten the AOR; "
        "the REGISTER binds two distinct contacts.",
        "request", "parses", None, None, "registrar"),
    "esc02": _E(
        "3.1.1.5", "Use of % When It Is Not an Escape",
        "% in the method, display names, branch and a header name is not an escape: "
        "RE%47IST%45R is an unknown method, C%6Fntact not Contact; an endpoint answers 501.",
        "request", "parses", None, 501, "uas"),
    "lwsdisp": _E(
        "3.1.1.6", "Message with No LWS between Display Name and <",
        "A token display name directly followed by '<' is legal and must be accepted.",
        "request", "parses", None, None, "parser"),
    "longreq": _E(
        "3.1.1.7", "Long Values in Header Fields",
        "Very long header values, parameter names, Call-ID and 34 Via values must parse.",
        "request", "parses", None, None, "parser"),
    "dblreq": _E(
        "3.1.1.8", "Extra Trailing Octets in a UDP Datagram",
        "Octets after Content-Length (here an INVITE) are noise to ignore (RFC 3261 §18.3); "
        "the REGISTER is handled normally.",
        "request", "parses", None, None, "parser"),
    "semiuri": _E(
        "3.1.1.9", "Semicolon-Separated Parameters in URI User Part",
        "The Request-URI user is 'user;par=u%40example.net': the ';' belongs to the user part, "
        "not a uri-parameter.",
        "request", "parses", None, None, "parser"),
    "transports": _E(
        "3.1.1.10", "Varied and Unknown Transport Types",
        "Via values with UDP, SCTP, TLS, an unknown transport and TCP are all well formed.",
        "request", "parses", None, None, "parser"),
    "mpart01": _E(
        "3.1.1.11", "Multipart MIME Message",
        "A MESSAGE with a multipart/mixed body containing binary data (553 octets) must be "
        "parsed without treating the body as text.",
        "request", "parses", None, None, "parser"),
    "unreason": _E(
        "3.1.1.12", "Unusual Reason Phrase",
        "A 200 response whose reason phrase holds UTF-8 and unusual characters is well formed.",
        "response", "parses", None, None, "transaction"),
    "noreason": _E(
        "3.1.1.13", "Empty Reason Phrase",
        "A 100 response with an empty reason phrase (SP then CRLF) is well formed.",
        "response", "parses", None, None, "transaction"),
    # -- 3.1.2 Parser tests: invalid messages ------------------------------------------------
    "badinv01": _E(
        "3.1.2.1", "Extraneous Header Field Separators",
        "Extra ';' and ',' without parameters in Via and Contact: syntactically invalid, answer "
        "400.",
        "request", "rejects", 400, 400, "parser"),
    "clerr": _E(
        "3.1.2.2", "Content Length Larger Than Message",
        "Content-Length exceeds the datagram: over UDP answer 400 (on a stream the framing "
        "layer would wait for more bytes).",
        "request", "rejects", 400, 400, "parser"),
    "ncl": _E(
        "3.1.2.3", "Negative Content-Length",
        "A negative Content-Length is invalid: answer 400 (the RFC warns against crashing or "
        "buffer overruns).",
        "request", "rejects", 400, 400, "parser"),
    "scalar02": _E(
        "3.1.2.4", "Request Scalar Fields with Overlarge Values",
        "CSeq beyond 2**32-1 makes the request invalid: answer 400 (Max-Forwards and Expires "
        "alone could be tolerated).",
        "request", "rejects", 400, 400, "parser"),
    "scalarlg": _E(
        "3.1.2.5", "Response Scalar Fields with Overlarge Values",
        "A response with out-of-range CSeq, Retry-After and Warning code is simply discarded.",
        "response", "drops", None, None, "parser"),
    "quotbal": _E(
        "3.1.2.6", "Unterminated Quoted String in Display Name",
        "An unterminated quote in the To display name: answer 400.",
        "request", "rejects", 400, 400, "parser"),
    "ltgtruri": _E(
        "3.1.2.7", "<> Enclosing Request-URI",
        "A Request-URI inside <> is invalid; it is reasonable always to reject it with 400.",
        "request", "rejects", 400, 400, "parser",
        "rejected rather than stripping the brackets"),
    "lwsruri": _E(
        "3.1.2.8", "Malformed SIP Request-URI (embedded LWS)",
        "LWS inside the Request-URI leaves the Request-Line with too many elements: answer 400.",
        "request", "rejects", 400, 400, "parser"),
    "lwsstart": _E(
        "3.1.2.9", "Multiple SP Separating Request-Line Elements",
        "Several SP between Request-Line elements: acceptable to reject as malformed, or to "
        "ignore the extra SP.",
        "request", "rejects", 400, 400, "parser",
        "rejected: the Request-Line grammar is exactly one SP between elements (§25.1)"),
    "trws": _E(
        "3.1.2.10", "SP Characters at End of Request-Line",
        "SP between SIP-Version and CRLF: acceptable to reject as malformed, or to ignore it.",
        "request", "rejects", 400, 400, "parser",
        "rejected, as for lwsstart"),
    "escruri": _E(
        "3.1.2.11", "Escaped Headers in SIP Request-URI",
        "A Request-URI carrying escaped headers is malformed: acceptable to answer 400, or to "
        "ignore the headers (never to apply them).",
        "request", "rejects", 400, 400, "parser",
        "rejected rather than ignoring the headers"),
    "baddate": _E(
        "3.1.2.12", "Invalid Time Zone in Date Header Field",
        "A non-GMT Date is invalid, but an element that does not use Date should not reject "
        "the request for it and may ignore the value.",
        "request", "parses", None, None, "parser",
        "accepted: the switch never reads Date, so the value is kept as opaque text"),
    "regbadct": _E(
        "3.1.2.13", "Failure to Enclose name-addr URI in <>",
        "A Contact URI with an escaped header must be in <>; reasonable to answer 400.",
        "request", "parses", None, 400, "registrar",
        "the message parses (Contact is read lazily); the registrar reading the Contact gets "
        "RemoteProtocolError and answers 400"),
    "badaspec": _E(
        "3.1.2.14", "Spaces within addr-spec",
        "Spaces inside the <> of the To addr-spec: reasonable to reject with 400, or to ignore "
        "them.",
        "request", "rejects", 400, 400, "parser",
        "rejected rather than ignoring the spaces"),
    "baddn": _E(
        "3.1.2.15", "Non-token Characters in Display Name",
        "Unquoted display names with non-token characters: reasonable always to reject with "
        "400.",
        "request", "rejects", 400, 400, "parser"),
    "badvers": _E(
        "3.1.2.16", "Unknown Protocol Version",
        "SIP/7.0: an element answers 505 Version Not Supported.",
        "request", "rejects", 505, 505, "parser"),
    "mismatch01": _E(
        "3.1.2.17", "Start Line and CSeq Method Mismatch",
        "OPTIONS in the Request-Line but INVITE in CSeq: answer 400.",
        "request", "rejects", 400, 400, "parser"),
    "mismatch02": _E(
        "3.1.2.18", "Unknown Method with CSeq Method Mismatch",
        "An unknown method with a mismatched CSeq: answer 501 (400 also acceptable; 501 is more "
        "future-proof).",
        "request", "rejects", 501, 501, "parser",
        "501 for a method outside the known SIP methods, 400 otherwise"),
    "bigcode": _E(
        "3.1.2.19", "Overlarge Response Code",
        "A response code above 699 (4294967301): drop the response.",
        "response", "drops", None, None, "parser"),
    # -- 3.2 Transaction layer semantics ------------------------------------------------------
    "badbranch": _E(
        "3.2.1", "Missing Transaction Identifier",
        "branch=z9hG4bK with nothing after the cookie: parsers must not break; reject with 400 "
        "or fall back to RFC 2543 transaction matching.",
        "request", "parses", None, None, "transaction",
        "parsed; the transaction layer decides (matching with a branch equal to the cookie)"),
    # -- 3.3 Application layer semantics ------------------------------------------------------
    "insuf": _E(
        "3.3.1", "Missing Required Header Fields",
        "No Call-ID, From or To: the element must not break; ideally it answers 400.",
        "request", "rejects", 400, 400, "parser",
        "the 400 copies the Via and CSeq the request had"),
    "unkscm": _E(
        "3.3.2", "Request-URI with Unknown Scheme",
        "A Request-URI with a scheme nobody knows is well formed: answer 416 Unsupported URI "
        "Scheme.",
        "request", "parses", None, 416, "uas"),
    "novelsc": _E(
        "3.3.3", "Request-URI with Known but Atypical Scheme",
        "soap.beep: well formed; an element that never accepts the scheme answers 416 (404 if "
        "it accepts some URIs of it).",
        "request", "parses", None, 416, "uas"),
    "unksm2": _E(
        "3.3.4", "Unknown URI Schemes in Header Fields",
        "isbn:, http: and name: URIs in To, From and Contact are well formed; a registrar "
        "answers 400 because To must hold a SIP or SIPS AOR.",
        "request", "parses", None, 400, "registrar"),
    "bext01": _E(
        "3.3.5", "Proxy-Require and Require",
        "Require and Proxy-Require name unsupported extensions: answer 420 Bad Extension with "
        "an Unsupported header listing them.",
        "request", "parses", None, 420, "uas"),
    "invut": _E(
        "3.3.6", "Unknown Content-Type",
        "An INVITE with a body of an unknown Content-Type: a UAS answers 415 with an Accept "
        "header.",
        "request", "parses", None, 415, "uas"),
    "regaut01": _E(
        "3.3.7", "Unknown Authorization Scheme",
        "Well formed; a registrar that authenticates answers 401 with a challenge in a scheme "
        "it knows.",
        "request", "parses", None, 401, "registrar"),
    "multi01": _E(
        "3.3.8", "Multiple Values in Single Value Required Fields",
        "Two rows each of To, From, Call-ID, CSeq and Max-Forwards, all single-valued: "
        "answer 400.",
        "request", "rejects", 400, 400, "parser"),
    "mcl01": _E(
        "3.3.9", "Multiple Content-Length Values",
        "Two Content-Length values: the body length is unknown; answer 400.",
        "request", "rejects", 400, 400, "parser"),
    "bcast": _E(
        "3.3.10", "200 OK Response with Broadcast Via Header Field Value",
        "Well formed; an endpoint discards it, a proxy must not forward it to the broadcast "
        "address.",
        "response", "parses", None, None, "transaction"),
    "zeromf": _E(
        "3.3.11", "Max-Forwards of Zero",
        "A proxy must not forward it and answers 483 Too Many Hops; an endpoint processes it "
        "as if Max-Forwards were positive.",
        "request", "parses", None, 483, "proxy"),
    "cparam01": _E(
        "3.3.12", "REGISTER with a Contact Header Parameter",
        "';unknownparam' is a contact-param, not a url-param: the REGISTER succeeds and the "
        "binding's URI has no such parameter.",
        "request", "parses", None, None, "registrar"),
    "cparam02": _E(
        "3.3.13", "REGISTER with a url-parameter",
        "';unknownparam' inside <> is a url-param: the REGISTER succeeds and the binding's URI "
        "keeps it.",
        "request", "parses", None, None, "registrar"),
    "regescrt": _E(
        "3.3.14", "REGISTER with a URL Escaped Header",
        "The Contact URI carries an escaped Route header: the REGISTER succeeds and the binding "
        "keeps the header.",
        "request", "parses", None, None, "registrar"),
    "sdp01": _E(
        "3.3.15", "Unacceptable Accept Offering",
        "Accept lists only an unknown type, so no SDP answer can be sent: answer 406 (400 also "
        "acceptable).",
        "request", "parses", None, 406, "uas"),
    # -- 3.4 Backward compatibility -----------------------------------------------------------
    "inv2543": _E(
        "3.4.1", "INVITE with RFC 2543 Syntax",
        "A legal RFC 2543 INVITE (no branch, no From tag, no Max-Forwards): accepted by an "
        "element that keeps backward compatibility.",
        "request", "parses", None, None, "transaction"),
}  # fmt: skip
