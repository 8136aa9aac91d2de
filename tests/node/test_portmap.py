"""The port-mapping service (node/portmap.py) against UDP sockets on 127.0.0.1
that the test reads: bounded attempts when no gateway answers, PCP with
renewal and removal, and the fall-back to NAT-PMP. The real gateway daemon
(miniupnpd) is tests/nat/test_nat_portmap.py's."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from p2psocial.node.portmap import PortMapper, default_gateway, parse_gateway
from p2psocial.protocol import portmap as pm

PORTS = [(pm.PROTO_TCP, 4001), (pm.PROTO_UDP, 4002)]


async def _until(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds (the caller's fail_after bounds the wait)."""
    for _ in itertools.count():
        if condition():
            return
        await trio.sleep(0.01)


async def _gateway_socket() -> tuple[trio.socket.SocketType, tuple[str, int]]:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()


async def test_with_no_gateway_answering_it_sends_a_bounded_number_of_requests_then_backs_off() -> (
    None
):
    sock, addr = await _gateway_socket()
    got: list[bytes] = []
    with trio.fail_after(20), sock:
        mapper = PortMapper(addr, PORTS, timeout_scale=0.1)
        async with trio.open_nursery() as nursery:
            await nursery.start(mapper.run)
            # One round: ATTEMPTS PCP requests, then ATTEMPTS NAT-PMP ones.
            while len(got) < 2 * pm.ATTEMPTS:
                got.append(await sock.recv(2048))
            await _until(lambda: mapper.state == "failed")
            st = mapper.status()
            nursery.cancel_scope.cancel()
    assert [g[0] for g in got] == [2] * pm.ATTEMPTS + [0] * pm.ATTEMPTS
    assert got[pm.ATTEMPTS :] == [pm.encode_natpmp_external_request()] * pm.ATTEMPTS
    assert mapper.statistics()["requests_sent"] == 2 * pm.ATTEMPTS
    assert st["state"] == "failed" and st["retry_in"] >= 299, st
    assert st["external"] is None and mapper.statistics()["rounds_failed"] == 1


async def test_a_closed_gateway_port_ends_the_exchange_at_once() -> None:
    sock, addr = await _gateway_socket()
    sock.close()  # nothing listens there: the kernel answers ICMP port unreachable
    with trio.fail_after(10):
        mapper = PortMapper(addr, PORTS)
        async with trio.open_nursery() as nursery:
            await nursery.start(mapper.run)
            await _until(lambda: mapper.state == "failed")
            nursery.cancel_scope.cancel()
    assert mapper.statistics()["gateway_refused"] >= 1
    assert mapper.statistics()["requests_sent"] <= 2


def _pcp_answer(req: bytes, external_port: int, lifetime: int) -> bytes:
    """What a PCP gateway at 203.0.113.70 answers to MAP request ``req``."""
    head = bytes([2, 0x81, 0, 0]) + struct.pack("!II12x", lifetime, 5)
    body = req[24:42] + struct.pack("!H", external_port)
    return head + body + bytes(10) + b"\xff\xff" + bytes([203, 0, 113, 70])


async def test_pcp_maps_both_ports_renews_them_and_removes_them_on_stop() -> None:
    sock, addr = await _gateway_socket()
    seen: list[tuple[int, int, int]] = []  # (transport, internal port, lifetime)
    nonces: list[bytes] = []
    changes = 0

    def changed() -> None:
        nonlocal changes
        changes += 1

    async def gateway() -> None:
        while True:
            req, peer = await sock.recvfrom(2048)
            lifetime = struct.unpack_from("!I", req, 4)[0]
            transport, internal = req[36], struct.unpack_from("!H", req, 40)[0]
            seen.append((transport, internal, lifetime))
            nonces.append(req[24:36])
            # A junk datagram first: dropped and counted, not fatal.
            await sock.sendto(b"\x09junk", peer)
            await sock.sendto(_pcp_answer(req, internal + 1000, min(lifetime, 2)), peer)

    with trio.fail_after(20), sock:
        async with trio.open_nursery() as outer:
            outer.start_soon(gateway)
            # renew_delay would renew a 2 s grant after 30 s (its floor): the
            # test renews at a tenth of the lifetime instead.
            mapper = PortMapper(addr, PORTS, on_change=changed, renew=lambda t: t / 10)
            async with trio.open_nursery() as nursery:
                await nursery.start(mapper.run)
                await _until(lambda: len(seen) >= 4)  # mapped, then renewed
                st = mapper.status()
                nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert st["protocol"] == "pcp" and st["external"] == "203.0.113.70:5001", st
    assert st["udp_external"] == "203.0.113.70:5002" and st["expires_in"] == 2, st
    mapped = [(pm.PROTO_TCP, 4001, pm.LIFETIME), (pm.PROTO_UDP, 4002, pm.LIFETIME)]
    assert seen == [*mapped, *mapped, (pm.PROTO_TCP, 4001, 0), (pm.PROTO_UDP, 4002, 0)]
    # A renewal and the removal name the mapping by the nonce that made it.
    assert nonces[0] == nonces[2] == nonces[4] != nonces[1] == nonces[3] == nonces[5]
    stats = mapper.statistics()
    assert stats["mappings_made"] == 2 and stats["mappings_removed"] == 2, stats
    assert stats["dropped_version"] == 6 and changes == 1, stats  # renewals change nothing
    assert mapper.state == "stopped" and mapper.external() is None


async def test_a_gateway_without_pcp_is_asked_with_natpmp() -> None:
    sock, addr = await _gateway_socket()
    asked: list[bytes] = []

    async def gateway() -> None:
        while True:
            req, peer = await sock.recvfrom(2048)
            asked.append(req)
            if req[0] == 2:  # PCP: "unsupported version", in NAT-PMP's format
                await sock.sendto(bytes([0, 0x81, 0, 1]) + bytes(4), peer)
            elif req[1] == 0:
                await sock.sendto(bytes.fromhex("008000000000000bcb007146"), peer)
            else:
                ports_life = req[4:]
                await sock.sendto(bytes([0, req[1] + 128, 0, 0]) + bytes(4) + ports_life, peer)

    with trio.fail_after(20), sock:
        async with trio.open_nursery() as outer:
            outer.start_soon(gateway)
            mapper = PortMapper(addr, PORTS[:1])
            async with trio.open_nursery() as nursery:
                await nursery.start(mapper.run)
                await _until(lambda: mapper.state == "mapped")
                st = mapper.status()
                nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert st["protocol"] == "natpmp" and st["external"] == "203.0.113.70:4001", st
    assert [(r[0], r[1]) for r in asked] == [(2, 1), (0, 0), (0, 2), (0, 2)]
    assert asked[-1] == pm.encode_natpmp_map_request(pm.PROTO_TCP, 4001, 0, 0)


ROUTES = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
    "eth0\t00000000\t110200C0\t0003\t0\t0\t0\t00000000\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(ROUTES, "192.0.2.17"), (ROUTES.replace("0003", "0001"), None), ("", None), ("x\ny", None)],
)
def test_default_gateway_reads_the_default_route(
    tmp_path: Path, text: str, expected: str | None
) -> None:
    route = tmp_path / "route"
    route.write_text(text)
    assert default_gateway(route) == expected
    assert default_gateway(tmp_path / "absent") is None


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("none", None), ("192.0.2.1", ("192.0.2.1", 5351)), ("127.0.0.1:9", ("127.0.0.1", 9))],
)
def test_parse_gateway(setting: str, expected: tuple[str, int] | None) -> None:
    assert parse_gateway(setting) == expected


@pytest.mark.parametrize("setting", ["router.home", "192.0.2.1:0", "192.0.2.1:x"])
def test_parse_gateway_refuses_what_is_not_an_ipv4_gateway(setting: str) -> None:
    with pytest.raises(OSError if ":" not in setting else ValueError):
        parse_gateway(setting)


async def test_a_node_asks_its_gateway_for_its_link_port_unless_policy_says_no(
    tmp_path: Path,
) -> None:
    from p2psocial.node import NodeConfig, open_node
    from p2psocial.protocol.identity import SigningKey

    sock, addr = await _gateway_socket()
    with trio.fail_after(30), sock:
        gateway = f"{addr[0]}:{addr[1]}"
        cfg = NodeConfig(data_dir=tmp_path / "on", serve_api=False, portmap_gateway=gateway)
        keys = {"identity_key": SigningKey.generate(), "node_key": SigningKey.generate()}
        async with open_node(cfg, **keys) as node:
            req = await sock.recv(2048)
            assert node.peer_addr is not None
            st = (await node.status())["port_mapping"]
        assert req[:2] == b"\x02\x01" and req[36] == pm.PROTO_TCP, req.hex()
        assert struct.unpack_from("!HH", req, 40) == (node.peer_addr[1], node.peer_addr[1])
        assert st["state"] == "starting" and st["gateway"] == gateway, st
        cfg = NodeConfig(data_dir=tmp_path / "off", serve_api=False, portmap_gateway=gateway)
        cfg.policy.port_mapping = False
        async with open_node(cfg, **keys) as node:
            assert (await node.status())["port_mapping"] == {"state": "off"}
            assert node.portmap is None


# -- UPnP-IGD against a scripted gateway: SSDP on UDP, SOAP over real TCP ----------

DESCRIPTION = b"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
<controlURL>/l3f</controlURL></service></serviceList>
<deviceList><device><serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<controlURL>ctl/ip</controlURL></service></serviceList></device></deviceList>
</device></root>"""

_FAULT = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
    "<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
    '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>{}</errorCode>'
    "<errorDescription>no</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"
)


def _ok(action: str, out: str = "") -> str:
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f'<u:{action}Response xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">'
        f"{out}</u:{action}Response></s:Body></s:Envelope>"
    )


class FakeIgd:
    """An IGD on 127.0.0.1: answers SSDP searches with ``location`` (its own
    description by default) and SOAP actions with ``answers[action]`` (a
    list of (status, body), used in turn; a 200 with no output when empty).
    Records each action as (action, {argument: value})."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, dict[str, str]]] = []
        self.answers: dict[str, list[tuple[int, str]]] = {}
        self.searches: list[bytes] = []
        self.location = ""
        self.http_port = 0
        self.connections = 0
        self.dead = False

    async def serve(self, nursery: trio.Nursery, ssdp: trio.socket.SocketType) -> None:
        listeners = await nursery.start(trio.serve_tcp, self._http, 0)
        self.http_port = listeners[0].socket.getsockname()[1]
        self.location = self.location or f"http://127.0.0.1:{self.http_port}/dev/desc.xml"
        nursery.start_soon(self._ssdp, ssdp)

    async def _ssdp(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, peer = await sock.recvfrom(2048)
            self.searches.append(data)
            # A stray answer first (another kind of device): dropped, counted.
            await sock.sendto(b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n", peer)
            st = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
            answer = f"HTTP/1.1 200 OK\r\nST: {st}\r\nLOCATION: {self.location}\r\n\r\n"
            await sock.sendto(answer.encode(), peer)

    async def _http(self, stream: trio.SocketStream) -> None:
        from xml.etree import ElementTree as ET

        self.connections += 1
        if self.dead:
            return  # hangs up at once
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += await stream.receive_some(4096)
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            body += await stream.receive_some(4096)
        if lines[0].startswith("GET /dev/desc.xml "):
            # Chunked, as some routers send it.
            size = len(DESCRIPTION) // 2
            chunks = [DESCRIPTION[:size], DESCRIPTION[size:]]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + payload
            )
            return
        assert lines[0] == "POST /dev/ctl/ip HTTP/1.1", lines[0]
        action = headers["soapaction"].strip('"').rsplit("#", 1)[1]
        [call] = [el for el in ET.fromstring(body).iter() if el.tag.endswith("}" + action)]
        self.actions.append((action, {c.tag: c.text or "" for c in call}))
        queue = self.answers.get(action, [])
        status, text = queue.pop(0) if queue else (200, _ok(action))
        data = text.encode()
        reason = "OK" if status == 200 else "Internal Server Error"
        await stream.send_all(
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
        )


async def _closed_udp_port() -> tuple[str, int]:
    sock, addr = await _gateway_socket()
    sock.close()  # PCP and NAT-PMP are refused at once (ICMP port unreachable)
    return addr


async def test_an_igd_only_gateway_is_found_by_ssdp_and_maps_past_a_conflict_and_a_permanent_lease() -> (
    None
):
    gw = await _closed_udp_port()
    ssdp, ssdp_addr = await _gateway_socket()
    igd = FakeIgd()
    ext_ip = "<NewExternalIPAddress>203.0.113.70</NewExternalIPAddress>"
    igd.answers = {
        "GetExternalIPAddress": [(200, _ok("GetExternalIPAddress", ext_ip))],
        # The TCP port is another host's (718): the mapper tries another one.
        # The UDP mapping's lease is refused (725): it asks for a permanent one.
        "AddPortMapping": [
            (500, _FAULT.format(718)),
            (200, _ok("AddPortMapping")),
            (500, _FAULT.format(725)),
        ],
    }
    with trio.fail_after(20), ssdp:
        async with trio.open_nursery() as outer:
            await igd.serve(outer, ssdp)
            mapper = PortMapper(gw, PORTS, ssdp_port=ssdp_addr[1], timeout_scale=0.2)
            async with trio.open_nursery() as nursery:
                await nursery.start(mapper.run)
                await _until(lambda: mapper.state != "starting")
                st = mapper.status()
                nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    adds = [args for action, args in igd.actions if action == "AddPortMapping"]
    deletes = [args for action, args in igd.actions if action == "DeletePortMapping"]
    assert [a for a, _ in igd.actions] == [
        "GetExternalIPAddress",
        *["AddPortMapping"] * 4,
        *["DeletePortMapping"] * 2,
    ]
    tcp_port = int(adds[1]["NewExternalPort"])
    assert adds[0]["NewExternalPort"] == "4001" and 1024 <= tcp_port <= 65535
    assert [(a["NewProtocol"], a["NewInternalPort"], a["NewLeaseDuration"]) for a in adds] == [
        ("TCP", "4001", "7200"),
        ("TCP", "4001", "7200"),
        ("UDP", "4002", "7200"),
        ("UDP", "4002", "0"),
    ]
    assert {a["NewInternalClient"] for a in adds} == {"127.0.0.1"}
    assert adds[0]["NewPortMappingDescription"] == "p2psocial"
    assert st["state"] == "mapped" and st["protocol"] == "igd", st
    assert (
        st["external"] == f"203.0.113.70:{tcp_port}" and st["udp_external"] == "203.0.113.70:4002"
    )
    assert st["gateway"] == f"127.0.0.1:{igd.http_port}", st
    # Removed on stop, by the external ports granted.
    assert [(d["NewProtocol"], d["NewExternalPort"]) for d in deletes] == [
        ("TCP", str(tcp_port)),
        ("UDP", "4002"),
    ]
    stats = mapper.statistics()
    assert stats["refused_result_718"] == 1 and stats["refused_result_725"] == 1, stats
    assert stats["dropped_wrong_target"] >= 1 and stats["search_answers"] == 1, stats
    assert stats["mappings_made"] == 2 and stats["mappings_removed"] == 2, stats
    # One search on the first round: to the group and to the gateway.
    assert len(igd.searches) == 1 and b"ST: urn:schemas-upnp-org:device:Internet" in igd.searches[0]


async def test_an_igd_answer_naming_another_host_is_not_followed() -> None:
    gw = await _closed_udp_port()
    ssdp, ssdp_addr = await _gateway_socket()
    elsewhere = FakeIgd()
    with trio.fail_after(20), ssdp:
        async with trio.open_nursery() as outer:
            await elsewhere.serve(outer, await _gateway_socket_at("127.0.0.2"))
            igd = FakeIgd()
            igd.location = f"http://127.0.0.2:{elsewhere.http_port}/dev/desc.xml"
            await igd.serve(outer, ssdp)
            mapper = PortMapper(gw, PORTS, ssdp_port=ssdp_addr[1], timeout_scale=0.05)
            async with trio.open_nursery() as nursery:
                await nursery.start(mapper.run)
                await _until(lambda: mapper.state == "failed")
                nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    stats = mapper.statistics()
    # Both searches were answered, each time with a location at another host.
    assert stats["dropped_foreign_location"] == 2 and stats["searches_sent"] == 4, stats
    assert elsewhere.connections == 0 and igd.connections == 0
    assert stats["rounds_failed"] == 1 and "search_answers" not in stats, stats


async def _gateway_socket_at(host: str) -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind((host, 0))
    return sock


@pytest.mark.parametrize("claimed", ["127.0.0.1", "224.0.0.1", "255.255.255.255", "0.0.0.0", "x"])
async def test_an_igd_claiming_an_external_address_that_cannot_be_one_maps_nothing(
    claimed: str,
) -> None:
    gw = await _closed_udp_port()
    ssdp, ssdp_addr = await _gateway_socket()
    igd = FakeIgd()
    out = f"<NewExternalIPAddress>{claimed}</NewExternalIPAddress>"
    igd.answers = {"GetExternalIPAddress": [(200, _ok("GetExternalIPAddress", out))]}
    with trio.fail_after(20), ssdp:
        async with trio.open_nursery() as outer:
            await igd.serve(outer, ssdp)
            mapper = PortMapper(gw, PORTS, ssdp_port=ssdp_addr[1], timeout_scale=0.2)
            async with trio.open_nursery() as nursery:
                await nursery.start(mapper.run)
                await _until(lambda: mapper.state == "failed")
                nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert [a for a, _ in igd.actions] == ["GetExternalIPAddress"]
    assert mapper.statistics()["dropped_no_external_ip"] == 1
    assert mapper.external() is None


async def test_an_igd_that_moves_is_searched_for_again() -> None:
    """A router restarted its IGD on another port: the renewal fails at the
    old control URL, and the next round finds the new one (spec/portmap.md §7.1)."""
    gw = await _closed_udp_port()
    ssdp, ssdp_addr = await _gateway_socket()
    spare, _ = await _gateway_socket()
    first, second = FakeIgd(), FakeIgd()
    ext_ip = "<NewExternalIPAddress>203.0.113.70</NewExternalIPAddress>"
    for fake in (first, second):
        fake.answers = {"GetExternalIPAddress": [(200, _ok("GetExternalIPAddress", ext_ip))]}
    with trio.fail_after(20), ssdp, spare:
        async with trio.open_nursery() as outer:
            await first.serve(outer, ssdp)
            await second.serve(outer, spare)
            mapper = PortMapper(
                gw,
                PORTS[:1],
                ssdp_port=ssdp_addr[1],
                timeout_scale=0.1,
                renew=lambda t: 0.3,
                backoff=lambda n: 0.3,
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(mapper.run)
                await _until(lambda: mapper.state == "mapped")
                # The old control URL now hangs up; searches name the new one.
                first.dead = True
                first.location = second.location
                await _until(lambda: any(a == "AddPortMapping" for a, _ in second.actions))
                await _until(lambda: mapper.state == "mapped")
                st = mapper.status()
                nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert mapper.statistics()["igd_forgotten"] >= 1
    assert st["gateway"] == f"127.0.0.1:{second.http_port}", st
