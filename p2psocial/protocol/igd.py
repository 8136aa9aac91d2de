"""Port mapping on home routers by UPnP-IGD: the SSDP search, the device
description and the SOAP actions a node exchanges with its gateway
(spec/portmap.md §7).

Sans-IO: requests are built as bytes and answers are read with
``decode_*_untrusted``, which raise only :class:`DecodeError` and enforce
their size limits before they parse. The socket work is node/portmap.py.

Theory: the node sends an SSDP ``M-SEARCH`` (HTTP over UDP) for an Internet
Gateway Device. The gateway answers with the URL of its device description,
an XML document listing its services; the WANIPConnection (or
WANPPPConnection) service has a control URL. The node then POSTs SOAP
actions there over HTTP: ``GetExternalIPAddress``, ``AddPortMapping`` (with
a lease, renewed by adding it again) and ``DeletePortMapping``. A refusal
comes back as HTTP 500 with a UPnP error code.

Only what a gateway needs to hear is built, and only what the node uses is
read: no DTDs, no entities, no encodings but UTF-8 and ASCII, IPv4 URLs only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from .errors import DecodeError

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "MAX_SEARCH_RESPONSE",
    "SEARCH_TARGET",
    "SERVICE_TYPES",
    "SSDP_GROUP",
    "SSDP_PORT",
    "Fault",
    "HttpResponse",
    "Url",
    "add_port_mapping",
    "decode_description_untrusted",
    "decode_http_response_untrusted",
    "decode_search_response_untrusted",
    "decode_soap_untrusted",
    "delete_port_mapping",
    "encode_get",
    "encode_search",
    "encode_soap",
    "get_external_ip",
    "parse_url",
]

#: The SSDP multicast group and port.
SSDP_GROUP: Final = "239.255.255.250"
SSDP_PORT: Final = 1900
#: What a node searches for (an IGD of version 2 answers it too).
SEARCH_TARGET: Final = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
#: Services that map ports, in the order they are preferred.
SERVICE_TYPES: Final = (
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)
#: Largest SSDP answer read (one datagram on an Ethernet link).
MAX_SEARCH_RESPONSE: Final = 1500
#: Largest HTTP status line plus headers read.
MAX_HEAD: Final = 8192
#: Largest HTTP body read (a description or a SOAP answer).
MAX_BODY: Final = 65536
#: Most header lines read, in SSDP or HTTP.
MAX_HEADERS: Final = 64
#: Longest chunk-size line (size and extensions) of a chunked body.
MAX_CHUNK_LINE: Final = 64
#: Most chunks in a chunked body (each read re-reads them: kept linear).
MAX_CHUNKS: Final = 1024
#: Most bytes of an HTTP answer as sent (head, body and chunk framing).
MAX_RESPONSE: Final = MAX_HEAD + 4 + 2 * MAX_BODY
#: Longest URL path accepted.
MAX_PATH: Final = 512
#: What a mapping is called at the gateway (its owner sees it in the router's page).
DESCRIPTION: Final = "p2psocial"

_SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
_PATH_RE: Final = re.compile(r"/[\x21-\x7e]*")
_FORBIDDEN_XML: Final = ("<!doctype", "<!entity")


@dataclass(frozen=True, slots=True)
class Url:
    """An ``http://`` URL at an IPv4 address."""

    host: str
    port: int
    path: str

    def __str__(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP answer: its status code and (de-chunked) body."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Fault:
    """A refused SOAP action: the UPnP error code (0 if none was given)."""

    code: int
    description: str


# -- URLs ------------------------------------------------------------------------


def parse_url(text: str, base: Url | None = None) -> Url:
    """Read an ``http://a.b.c.d[:port]/path`` URL, or, given ``base``, a path
    relative to it (``/x`` from its root, ``x`` beside its path).

    Raises:
        DecodeError: ``bad_url`` for anything else (a name, IPv6, https, ...).
    """
    text = text.strip()
    if base is not None and not text.lower().startswith("http://"):
        if not text.startswith("/"):
            text = base.path.rsplit("/", 1)[0] + "/" + text
        return _url(base.host, base.port, text)
    if not text.lower().startswith("http://"):
        raise DecodeError("not an http:// URL", reason="bad_url")
    rest = text[7:]
    hostport, slash, path = rest.partition("/")
    host, colon, port_s = hostport.partition(":")
    if colon and not (port_s.isascii() and port_s.isdigit() and len(port_s) <= 5):
        raise DecodeError("bad port", reason="bad_url")
    port = int(port_s) if colon else 80
    return _url(host, port, slash + path if slash else "/")


def _url(host: str, port: int, path: str) -> Url:
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        raise DecodeError("the host is not an IPv4 address", reason="bad_url") from None
    if not 0 < port < 65536:
        raise DecodeError("port out of range", reason="bad_url")
    if len(path) > MAX_PATH or not _PATH_RE.fullmatch(path):
        raise DecodeError("bad path", reason="bad_url")
    return Url(str(ip), port, path)


# -- SSDP ------------------------------------------------------------------------


def encode_search(*, multicast: bool, host: str = SSDP_GROUP) -> bytes:
    """An SSDP M-SEARCH for an IGD: to the group (with MX 1), or unicast to
    ``host`` (UDA 1.1: no MX)."""
    lines = [
        "M-SEARCH * HTTP/1.1",
        f"HOST: {SSDP_GROUP if multicast else host}:{SSDP_PORT}",
        'MAN: "ssdp:discover"',
        *(["MX: 1"] if multicast else []),
        f"ST: {SEARCH_TARGET}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def decode_search_response_untrusted(data: bytes) -> Url:
    """The description URL of an SSDP answer to :func:`encode_search`.

    Raises:
        DecodeError: ``too_long``, ``bad_http``, ``not_ok`` (a status other
            than 200), ``wrong_target`` (an ST other than an IGD's),
            ``no_location`` or ``bad_url``.
    """
    if len(data) > MAX_SEARCH_RESPONSE:
        raise DecodeError(f"an SSDP answer over {MAX_SEARCH_RESPONSE} bytes", reason="too_long")
    status, headers = _head(data)
    if status != 200:
        raise DecodeError(f"SSDP status {status}", reason="not_ok")
    st = headers.get("st", "")
    if not st.startswith("urn:schemas-upnp-org:device:InternetGatewayDevice:"):
        raise DecodeError("not an Internet Gateway Device", reason="wrong_target")
    location = headers.get("location")
    if location is None:
        raise DecodeError("no LOCATION header", reason="no_location")
    return parse_url(location)


# -- HTTP ------------------------------------------------------------------------


def _head(data: bytes) -> tuple[int, dict[str, str]]:
    """The status code and headers (names lower-cased, the first of each
    kept) of an HTTP/1.x response head, with or without the blank line."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("a non-ASCII HTTP head", reason="bad_http") from None
    lines = text.replace("\r\n", "\n").split("\n")
    status_line = lines[0].split(" ", 2)
    if (
        len(status_line) < 2
        or status_line[0] not in ("HTTP/1.0", "HTTP/1.1")
        or not (len(status_line[1]) == 3 and status_line[1].isdigit())
    ):
        raise DecodeError("bad status line", reason="bad_http")
    headers: dict[str, str] = {}
    for n, line in enumerate(lines[1:]):
        if not line:
            break
        if n >= MAX_HEADERS:
            raise DecodeError("too many headers", reason="bad_http")
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise DecodeError("bad header line", reason="bad_http")
        headers.setdefault(name.lower(), value.strip())
    return int(status_line[1]), headers


def encode_get(url: Url) -> bytes:
    """An HTTP GET of ``url`` (for the description)."""
    return (
        f"GET {url.path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def decode_http_response_untrusted(data: bytes, *, eof: bool) -> HttpResponse | None:
    """The response in ``data``, the bytes read so far; None while it is
    incomplete and the connection still open (``eof`` false).

    A body is delimited by Content-Length, chunked transfer coding, or the
    end of the connection.

    Raises:
        DecodeError: ``too_long`` (a head over MAX_HEAD, a body over
            MAX_BODY, or over MAX_RESPONSE bytes in all), ``bad_http``, or
            ``truncated`` (the connection ended early).
    """
    if len(data) > MAX_RESPONSE:
        raise DecodeError(f"an HTTP answer over {MAX_RESPONSE} bytes", reason="too_long")
    end, gap = data.find(b"\r\n\r\n", 0, MAX_HEAD + 4), 4
    bare = data.find(b"\n\n", 0, MAX_HEAD + 2)
    if bare >= 0 and (end < 0 or bare < end):
        end, gap = bare, 2  # bare LF line ends, as some routers send
    if end < 0:
        if len(data) >= MAX_HEAD + 4:
            raise DecodeError(f"an HTTP head over {MAX_HEAD} bytes", reason="too_long")
        if eof:
            raise DecodeError("the connection ended inside the HTTP head", reason="truncated")
        return None
    status, headers = _head(data[:end])
    rest = data[end + gap :]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(rest, eof=eof)
        return None if body is None else HttpResponse(status, body)
    length_s = headers.get("content-length")
    if length_s is not None:
        if not (length_s.isascii() and length_s.isdigit() and len(length_s) <= 9):
            raise DecodeError("bad Content-Length", reason="bad_http")
        length = int(length_s)
        if length > MAX_BODY:
            raise DecodeError(f"an HTTP body over {MAX_BODY} bytes", reason="too_long")
        if len(rest) >= length:
            return HttpResponse(status, rest[:length])
        if eof:
            raise DecodeError("the connection ended inside the HTTP body", reason="truncated")
        return None
    if len(rest) > MAX_BODY:
        raise DecodeError(f"an HTTP body over {MAX_BODY} bytes", reason="too_long")
    return HttpResponse(status, rest) if eof else None


def _dechunk(data: bytes, *, eof: bool) -> bytes | None:
    body = bytearray()
    pos = 0
    for _ in range(MAX_CHUNKS + 1):
        nl = data.find(b"\r\n", pos, pos + MAX_CHUNK_LINE + 2)
        if nl < 0:
            if len(data) - pos > MAX_CHUNK_LINE + 1:
                raise DecodeError("bad chunk size line", reason="bad_http")
            break
        size_s = data[pos:nl].split(b";", 1)[0].strip()
        if not size_s or len(size_s) > 8 or not all(c in b"0123456789abcdefABCDEF" for c in size_s):
            raise DecodeError("bad chunk size", reason="bad_http")
        size = int(size_s, 16)
        if len(body) + size > MAX_BODY:
            raise DecodeError(f"an HTTP body over {MAX_BODY} bytes", reason="too_long")
        if size == 0:
            return bytes(body)  # trailers, if any, are not read
        if len(data) < nl + 2 + size + 2:
            break
        if data[nl + 2 + size : nl + 4 + size] != b"\r\n":
            raise DecodeError("a chunk not ended by CRLF", reason="bad_http")
        body += data[nl + 2 : nl + 2 + size]
        pos = nl + 4 + size
    else:
        raise DecodeError(f"a body in over {MAX_CHUNKS} chunks", reason="bad_http")
    if eof:
        raise DecodeError("the connection ended inside a chunk", reason="truncated")
    return None


# -- XML -------------------------------------------------------------------------


def _xml(body: bytes) -> ET.Element:
    if len(body) > MAX_BODY:
        raise DecodeError(f"an XML document over {MAX_BODY} bytes", reason="too_long")
    # UTF-8 only, read here and handed to the parser as text: expat would
    # otherwise detect UTF-16 by itself, and the DTD check below would be
    # looking at the wrong bytes. (A UTF-16 byte-order mark is not UTF-8.)
    if b"\x00" in body:
        raise DecodeError("not a UTF-8 document", reason="bad_xml")
    try:
        text = body.decode("utf-8-sig")  # a UTF-8 BOM, which some routers send, is dropped
    except UnicodeDecodeError:
        raise DecodeError("not a UTF-8 document", reason="bad_xml") from None
    lowered = text.lower()
    if any(bad in lowered for bad in _FORBIDDEN_XML):
        raise DecodeError("a DTD or entity declaration", reason="bad_xml")
    try:
        return ET.fromstring(text)
    except (ET.ParseError, ValueError, LookupError) as exc:
        raise DecodeError(f"not well-formed XML: {exc}", reason="bad_xml") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(el: ET.Element, name: str) -> str | None:
    for child in el:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def decode_description_untrusted(body: bytes, location: Url) -> tuple[str, Url]:
    """The preferred port-mapping service of a device description: its
    service type and control URL (resolved against ``location``, or the
    document's URLBase).

    Raises:
        DecodeError: ``too_long``, ``bad_xml``, ``no_service`` or ``bad_url``.
    """
    root = _xml(body)
    base = location
    url_base = _child_text(root, "URLBase")
    if url_base:
        base = parse_url(url_base)
    found: dict[str, str] = {}
    for el in root.iter():
        if _local(el.tag) != "service":
            continue
        kind = _child_text(el, "serviceType")
        control = _child_text(el, "controlURL")
        if kind in SERVICE_TYPES and control and kind not in found:
            found[kind] = control
    for kind in SERVICE_TYPES:
        if kind in found:
            return kind, parse_url(found[kind], base)
    raise DecodeError("no WANIPConnection or WANPPPConnection service", reason="no_service")


# -- SOAP ------------------------------------------------------------------------


def encode_soap(url: Url, service: str, action: str, args: list[tuple[str, str]]) -> bytes:
    """An HTTP POST of SOAP ``action`` of ``service`` at control ``url``."""
    params = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in args)
    body = (
        '<?xml version="1.0"?>\r\n'
        f'<s:Envelope xmlns:s="{_SOAP_ENV}" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
        f'<s:Body><u:{action} xmlns:u="{service}">{params}</u:{action}></s:Body>'
        "</s:Envelope>\r\n"
    ).encode()
    head = (
        f"POST {url.path} HTTP/1.1\r\n"
        f"Host: {url.host}:{url.port}\r\n"
        'Content-Type: text/xml; charset="utf-8"\r\n'
        f'SOAPAction: "{service}#{action}"\r\n'
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    return head + body


def get_external_ip(url: Url, service: str) -> bytes:
    """The GetExternalIPAddress request."""
    return encode_soap(url, service, "GetExternalIPAddress", [])


def add_port_mapping(
    url: Url,
    service: str,
    *,
    transport: str,
    external_port: int,
    internal_port: int,
    internal_client: str,
    lease: int,
) -> bytes:
    """The AddPortMapping request (``transport`` "TCP" or "UDP"; ``lease``
    in seconds, 0 for a permanent one)."""
    return encode_soap(
        url,
        service,
        "AddPortMapping",
        [
            ("NewRemoteHost", ""),
            ("NewExternalPort", str(external_port)),
            ("NewProtocol", transport),
            ("NewInternalPort", str(internal_port)),
            ("NewInternalClient", internal_client),
            ("NewEnabled", "1"),
            ("NewPortMappingDescription", DESCRIPTION),
            ("NewLeaseDuration", str(lease)),
        ],
    )


def delete_port_mapping(url: Url, service: str, *, transport: str, external_port: int) -> bytes:
    """The DeletePortMapping request."""
    return encode_soap(
        url,
        service,
        "DeletePortMapping",
        [
            ("NewRemoteHost", ""),
            ("NewExternalPort", str(external_port)),
            ("NewProtocol", transport),
        ],
    )


def decode_soap_untrusted(response: HttpResponse, action: str) -> dict[str, str] | Fault:
    """The output arguments of ``action``'s answer, or the :class:`Fault`
    a refusal carries.

    Raises:
        DecodeError: ``too_long``, ``bad_xml``, ``not_ok`` (an HTTP status
            other than 200 or 500), ``bad_soap`` (no answer to ``action``).
    """
    if response.status not in (200, 500):
        raise DecodeError(f"HTTP status {response.status}", reason="not_ok")
    root = _xml(response.body)
    if response.status == 500:
        code = description = None
        for el in root.iter():
            name = _local(el.tag)
            if name == "errorCode" and code is None:
                code = (el.text or "").strip()
            elif name == "errorDescription" and description is None:
                description = (el.text or "").strip()
        number = int(code) if code and code.isascii() and code.isdigit() and len(code) <= 4 else 0
        return Fault(number, (description or "")[:200])
    for el in root.iter():
        if _local(el.tag) == action + "Response":
            return {_local(child.tag): (child.text or "").strip() for child in el}
    raise DecodeError(f"no {action}Response", reason="bad_soap")
