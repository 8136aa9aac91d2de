"""UPnP-IGD messages (protocol/igd.py, spec/portmap.md §7): URL, SSDP, HTTP,
description and SOAP tables, and seeded properties: every decoder raises
only DecodeError on any bytes, and a SOAP request carries its arguments."""

from __future__ import annotations

import contextlib
from xml.etree import ElementTree as ET

import pytest
from hypothesis import given, seed
from hypothesis import strategies as st

from p2psocial.protocol import igd
from p2psocial.protocol.errors import DecodeError

BASE = igd.Url("192.0.2.17", 5000, "/dev/root.xml")


@pytest.mark.parametrize(
    ("text", "base", "expected"),
    [
        ("http://192.0.2.17:5000/rootDesc.xml", None, igd.Url("192.0.2.17", 5000, "/rootDesc.xml")),
        ("HTTP://192.0.2.17/", None, igd.Url("192.0.2.17", 80, "/")),
        ("http://192.0.2.17:49152", None, igd.Url("192.0.2.17", 49152, "/")),
        ("/ctl/IPConn", BASE, igd.Url("192.0.2.17", 5000, "/ctl/IPConn")),
        ("ctl/IPConn", BASE, igd.Url("192.0.2.17", 5000, "/dev/ctl/IPConn")),
        ("http://198.51.100.1:80/x", BASE, igd.Url("198.51.100.1", 80, "/x")),
    ],
)
def test_urls_read_to_these_values(text: str, base: igd.Url | None, expected: igd.Url) -> None:
    assert igd.parse_url(text, base) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://192.0.2.17/",
        "http://router.lan:5000/",
        "http://[2001:db8::1]:5000/",
        "http://192.0.2.17:0/",
        "http://192.0.2.17:65536/",
        "http://192.0.2.17:+80/",
        "http://192.0.2.17/a b",
        "http://192.0.2.17/" + "a" * 600,
        "ftp://192.0.2.17/",
    ],
)
def test_urls_that_are_not_an_ipv4_http_url_are_refused(text: str) -> None:
    with pytest.raises(DecodeError) as err:
        igd.parse_url(text)
    assert err.value.reason == "bad_url"


def test_searches_encode_to_these_bytes() -> None:
    st_line = b"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    assert igd.encode_search(multicast=True) == (
        b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
        b'MAN: "ssdp:discover"\r\nMX: 1\r\n' + st_line + b"\r\n"
    )
    assert igd.encode_search(multicast=False, host="192.0.2.17") == (
        b'M-SEARCH * HTTP/1.1\r\nHOST: 192.0.2.17:1900\r\nMAN: "ssdp:discover"\r\n'
        + st_line
        + b"\r\n"
    )


ST_IGD = "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            f"HTTP/1.1 200 OK\r\n{ST_IGD}\r\nLocation: http://192.0.2.17:5000/d.xml\r\n\r\n",
            igd.Url("192.0.2.17", 5000, "/d.xml"),
        ),
        # Bare LF line ends, a header of no value, the first LOCATION kept.
        (
            f"HTTP/1.1 200 OK\n{ST_IGD}\nEXT:\nLOCATION:http://192.0.2.17/a\n"
            "LOCATION: http://192.0.2.99/b\n",
            igd.Url("192.0.2.17", 80, "/a"),
        ),
    ],
)
def test_search_answers_decode_to_their_location(data: str, expected: igd.Url) -> None:
    assert igd.decode_search_response_untrusted(data.encode()) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"x" * 1501, "too_long"),
        (b"NOTIFY * HTTP/1.1\r\n\r\n", "bad_http"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "bad_http"),
        (b"HTTP/1.1 200 OK\r\n\xff: x\r\n\r\n", "bad_http"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad_http"),
        (b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 65 + b"\r\n", "bad_http"),
        (b"HTTP/1.1 404 Not Found\r\n\r\n", "not_ok"),
        (
            b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nLOCATION: http://192.0.2.17/\r\n\r\n",
            "wrong_target",
        ),
        (f"HTTP/1.1 200 OK\r\n{ST_IGD}\r\n\r\n".encode(), "no_location"),
        (f"HTTP/1.1 200 OK\r\n{ST_IGD}\r\nLOCATION: http://gw/\r\n\r\n".encode(), "bad_url"),
    ],
)
def test_bad_search_answers_raise_decode_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        igd.decode_search_response_untrusted(data)
    assert err.value.reason == reason


OK_HEAD = b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize(
    ("data", "eof", "expected"),
    [
        (OK_HEAD + b"Content-Length: 3\r\n\r\nabcdef", False, igd.HttpResponse(200, b"abc")),
        # Bare LF line ends, as some routers send; a CRLF head keeps its body's LFs.
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nab", False, igd.HttpResponse(200, b"ab")),
        (OK_HEAD + b"Content-Length: 4\r\n\r\na\n\nb", False, igd.HttpResponse(200, b"a\n\nb")),
        (OK_HEAD + b"Content-Length: 3\r\n\r\nab", False, None),
        (OK_HEAD + b"Content-Length: 3\r\n", False, None),
        (OK_HEAD + b"\r\nuntil the end", False, None),
        (OK_HEAD + b"\r\nuntil the end", True, igd.HttpResponse(200, b"until the end")),
        (
            b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
            False,
            igd.HttpResponse(500, b""),
        ),
        (
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            False,
            igd.HttpResponse(200, b"abcde"),
        ),
        (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nab", False, None),
        (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", False, None),
    ],
)
def test_http_answers_decode_when_complete(
    data: bytes, eof: bool, expected: igd.HttpResponse | None
) -> None:
    assert igd.decode_http_response_untrusted(data, eof=eof) == expected


@pytest.mark.parametrize(
    ("data", "eof", "reason"),
    [
        (b"x" * (igd.MAX_HEAD + 4), False, "too_long"),
        (OK_HEAD + b"Content-Length: 65537\r\n\r\n", False, "too_long"),
        (OK_HEAD + b"\r\n" + b"x" * (igd.MAX_BODY + 1), False, "too_long"),
        (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n10001\r\n", False, "too_long"),
        (OK_HEAD + b"Content-Length: -1\r\n\r\n", False, "bad_http"),
        (OK_HEAD + b"Content-Length: 1e3\r\n\r\n", False, "bad_http"),
        (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", False, "bad_http"),
        (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", False, "bad_http"),
        (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 70, False, "bad_http"),
        # A chunk extension as long as the connection lasts: the size line is bounded.
        (
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n1;" + b"x" * 70 + b"\r\n",
            False,
            "bad_http",
        ),
        # Many tiny chunks: each read re-reads them, so their number is bounded.
        (
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 1025,
            False,
            "bad_http",
        ),
        # Framing without end: bounded in all, whatever the chunks hold.
        (
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"0;x\r\n" * 30000,
            False,
            "too_long",
        ),
        (OK_HEAD + b"Content-Length: 9\r\n\r\nabc", True, "truncated"),
        (OK_HEAD + b"Content-Length: 9\r\n", True, "truncated"),
        (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nab", True, "truncated"),
    ],
)
def test_bad_http_answers_raise_decode_error_with_a_reason(
    data: bytes, eof: bool, reason: str
) -> None:
    with pytest.raises(DecodeError) as err:
        igd.decode_http_response_untrusted(data, eof=eof)
    assert err.value.reason == reason


def _description(*services: tuple[str, str], url_base: str = "") -> bytes:
    items = "".join(
        f"<service><serviceType>{kind}</serviceType><controlURL>{url}</controlURL></service>"
        for kind, url in services
    )
    base = f"<URLBase>{url_base}</URLBase>" if url_base else ""
    return (
        f'<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0">{base}'
        f"<device><deviceList><device><serviceList>{items}</serviceList></device>"
        "</deviceList></device></root>"
    ).encode()


WANIP1, WANIP2, WANPPP1 = (
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_description((WANIP1, "/ctl/ip")), (WANIP1, igd.Url("192.0.2.17", 5000, "/ctl/ip"))),
        # The most capable service wins, wherever it is in the document.
        (
            _description((WANPPP1, "/ppp"), (WANIP1, "/ip1"), (WANIP2, "/ip2")),
            (WANIP2, igd.Url("192.0.2.17", 5000, "/ip2")),
        ),
        (_description((WANPPP1, "ppp")), (WANPPP1, igd.Url("192.0.2.17", 5000, "/dev/ppp"))),
        (
            _description((WANIP1, "/ip"), url_base="http://192.0.2.17:49000"),
            (WANIP1, igd.Url("192.0.2.17", 49000, "/ip")),
        ),
        (
            _description(
                (WANIP1, " http://192.0.2.17:1780/ip "),
            ),
            (WANIP1, igd.Url("192.0.2.17", 1780, "/ip")),
        ),
        # A UTF-8 BOM is dropped; a declared encoding is not believed.
        (
            b"\xef\xbb\xbf"
            + _description((WANIP1, "/ip")).replace(b'"1.0"?>', b'"1.0" encoding="UTF-16"?>'),
            (WANIP1, igd.Url("192.0.2.17", 5000, "/ip")),
        ),
    ],
)
def test_descriptions_give_their_port_mapping_service(
    body: bytes, expected: tuple[str, igd.Url]
) -> None:
    assert igd.decode_description_untrusted(body, BASE) == expected


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><root>&b;</root>'
)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<root>" + b" " * igd.MAX_BODY + b"</root>", "too_long"),
        (LAUGHS, "bad_xml"),
        (LAUGHS.replace(b"DOCTYPE", b"doctype"), "bad_xml"),
        # UTF-16, which expat would detect by itself (BOM or not), past a
        # check of the bytes for a DTD: refused as not UTF-8.
        (b"\xff\xfe" + LAUGHS.decode().encode("utf-16-le"), "bad_xml"),
        (LAUGHS.decode().encode("utf-16-be"), "bad_xml"),
        (_description((WANIP1, "/ip")).replace(b"<root", b"<root\x00"), "bad_xml"),
        (b"<root>\xc3</root>", "bad_xml"),
        (b"<root><unclosed></root>", "bad_xml"),
        (b"", "bad_xml"),
        (_description(("urn:schemas-upnp-org:service:Layer3Forwarding:1", "/l3f")), "no_service"),
        (_description((WANIP1, "")), "no_service"),
        (_description((WANIP1, "http://router.lan/ip")), "bad_url"),
    ],
)
def test_bad_descriptions_raise_decode_error_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        igd.decode_description_untrusted(body, BASE)
    assert err.value.reason == reason


CTL = igd.Url("192.0.2.17", 5000, "/ctl/IPConn")


def test_an_add_port_mapping_request_is_an_http_post_of_its_arguments() -> None:
    req = igd.add_port_mapping(
        CTL,
        WANIP1,
        transport="TCP",
        external_port=4001,
        internal_port=4001,
        internal_client="192.0.2.18",
        lease=7200,
    )
    head, _, body = req.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /ctl/IPConn HTTP/1.1"
    assert f'SOAPAction: "{WANIP1}#AddPortMapping"' in lines
    assert "Host: 192.0.2.17:5000" in lines and f"Content-Length: {len(body)}" in lines
    [call] = [el for el in ET.fromstring(body).iter() if el.tag == f"{{{WANIP1}}}AddPortMapping"]
    assert [(c.tag, c.text or "") for c in call] == [
        ("NewRemoteHost", ""),
        ("NewExternalPort", "4001"),
        ("NewProtocol", "TCP"),
        ("NewInternalPort", "4001"),
        ("NewInternalClient", "192.0.2.18"),
        ("NewEnabled", "1"),
        ("NewPortMappingDescription", "p2psocial"),
        ("NewLeaseDuration", "7200"),
    ]


@seed(16)
@given(st.text(max_size=40))
def test_soap_arguments_are_escaped(value: str) -> None:
    # XML 1.0 cannot carry most control characters at all: only text that can be.
    value = "".join(c for c in value if c in "\t\n" or (c >= " " and c not in "\ufffe\uffff"))
    value = "".join(c for c in value if not 0xD800 <= ord(c) <= 0xDFFF)
    body = igd.encode_soap(CTL, WANIP1, "X", [("Arg", value)]).partition(b"\r\n\r\n")[2]
    [arg] = [el for el in ET.fromstring(body).iter() if el.tag == "Arg"]
    assert (arg.text or "") == value


def _soap_answer(status: int, xml: str) -> igd.HttpResponse:
    return igd.HttpResponse(status, xml.encode())


ENV = '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{}</s:Body></s:Envelope>'


@pytest.mark.parametrize(
    ("response", "action", "expected"),
    [
        (
            _soap_answer(
                200,
                ENV.format(
                    f'<u:GetExternalIPAddressResponse xmlns:u="{WANIP1}"><NewExternalIPAddress>'
                    " 203.0.113.70 </NewExternalIPAddress></u:GetExternalIPAddressResponse>"
                ),
            ),
            "GetExternalIPAddress",
            {"NewExternalIPAddress": "203.0.113.70"},
        ),
        (
            _soap_answer(200, ENV.format(f'<u:AddPortMappingResponse xmlns:u="{WANIP1}"/>')),
            "AddPortMapping",
            {},
        ),
        (
            _soap_answer(
                500,
                ENV.format(
                    "<s:Fault><detail><UPnPError><errorCode>718</errorCode>"
                    "<errorDescription>ConflictInMappingEntry</errorDescription>"
                    "</UPnPError></detail></s:Fault>"
                ),
            ),
            "AddPortMapping",
            igd.Fault(718, "ConflictInMappingEntry"),
        ),
        (_soap_answer(500, ENV.format("<s:Fault/>")), "AddPortMapping", igd.Fault(0, "")),
        (
            _soap_answer(500, ENV.format("<s:Fault><errorCode>99999</errorCode></s:Fault>")),
            "AddPortMapping",
            igd.Fault(0, ""),
        ),
    ],
)
def test_soap_answers_decode_to_outputs_or_a_fault(
    response: igd.HttpResponse, action: str, expected: object
) -> None:
    assert igd.decode_soap_untrusted(response, action) == expected


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (_soap_answer(404, ENV.format("")), "not_ok"),
        (_soap_answer(200, ENV.format("<OtherResponse/>")), "bad_soap"),
        (_soap_answer(200, "<s:Envelope>"), "bad_xml"),
        (igd.HttpResponse(200, LAUGHS), "bad_xml"),
    ],
)
def test_bad_soap_answers_raise_decode_error_with_a_reason(
    response: igd.HttpResponse, reason: str
) -> None:
    with pytest.raises(DecodeError) as err:
        igd.decode_soap_untrusted(response, "AddPortMapping")
    assert err.value.reason == reason


@seed(16)
@given(st.binary(max_size=2000), st.booleans())
def test_any_bytes_decode_or_raise_only_decode_error(data: bytes, eof: bool) -> None:
    with contextlib.suppress(DecodeError):
        igd.decode_search_response_untrusted(data)
    with contextlib.suppress(DecodeError):
        igd.decode_http_response_untrusted(data, eof=eof)
    with contextlib.suppress(DecodeError):
        igd.decode_description_untrusted(data, BASE)
    for status in (200, 500):
        with contextlib.suppress(DecodeError):
            igd.decode_soap_untrusted(igd.HttpResponse(status, data), "AddPortMapping")


VALID = [
    f"HTTP/1.1 200 OK\r\n{ST_IGD}\r\nLOCATION: http://192.0.2.17:5000/d.xml\r\n\r\n".encode(),
    OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    _description((WANIP1, "/ctl/ip")),
]


@seed(16)
@given(st.sampled_from(VALID), st.integers(0, 400), st.binary(min_size=1, max_size=4))
def test_valid_messages_with_bytes_changed_decode_or_raise_only_decode_error(
    base: bytes, at: int, junk: bytes
) -> None:
    at %= len(base)
    data = base[:at] + junk + base[at + len(junk) :]
    with contextlib.suppress(DecodeError):
        igd.decode_search_response_untrusted(data)
    for eof in (False, True):
        with contextlib.suppress(DecodeError):
            igd.decode_http_response_untrusted(data, eof=eof)
    with contextlib.suppress(DecodeError):
        igd.decode_description_untrusted(data, BASE)
