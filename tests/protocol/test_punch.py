"""Direct links over relayed ones (spec/sync.md §9, §12): the messages and the
punch state machine, by tables and seeded properties over a paired initiator
and responder."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from p2psocial.protocol.encoding import encode
from p2psocial.protocol.errors import DecodeError, ProtocolError
from p2psocial.protocol.punch import (
    INITIATOR,
    RESPONDER,
    Dial,
    Failed,
    PunchLimits,
    PunchSession,
    SendPunch,
    candidate_addrs,
    punch_role,
)
from p2psocial.protocol.wire import (
    Caps,
    Clock,
    PunchAnswer,
    PunchGo,
    PunchOffer,
    decode_message_untrusted,
    encode_message,
)

A = (("203.0.113.70", 4001),)
B = (("203.0.113.74", 4002),)


@pytest.mark.parametrize(
    "value, reason",
    [
        ({"t": "caps", "names": ["b", "a"]}, "bad_message"),  # unsorted
        ({"t": "caps", "names": ["a", "a"]}, "bad_message"),
        ({"t": "caps", "names": ["A"]}, "bad_message"),
        ({"t": "caps", "names": [""]}, "bad_message"),
        ({"t": "caps", "names": ["x" * 33]}, "bad_message"),
        ({"t": "caps", "names": [f"n{i:02}" for i in range(33)]}, "bad_message"),
        ({"t": "caps"}, "bad_message"),
        ({"t": "punch_offer", "addrs": [], "dialable": 1}, "bad_message"),
        ({"t": "punch_offer", "addrs": [["1.2.3.4", 0]], "dialable": False}, "bad_message"),
        ({"t": "punch_offer", "addrs": [["1.2.3.4", 65536]], "dialable": False}, "bad_message"),
        ({"t": "punch_offer", "addrs": [["host.example", 1]], "dialable": False}, "bad_message"),
        ({"t": "punch_offer", "addrs": [["2001:DB8::1", 1]], "dialable": False}, "bad_message"),
        ({"t": "punch_offer", "addrs": [["1.2.3.4"]], "dialable": False}, "bad_message"),
        ({"t": "punch_answer", "addrs": [["1.2.3.4", 1]] * 5, "dialable": True}, "bad_message"),
        ({"t": "punch_answer", "addrs": [], "dialable": True, "x": 1}, "bad_message"),
        ({"t": "punch_go", "at": 1}, "bad_message"),
        ({"t": "punch_offer", "addrs": [], "dialable": False, "mapping": 1}, "bad_message"),
        ({"t": "punch_offer", "addrs": [], "dialable": False, "mapping": ""}, "bad_message"),
        ({"t": "punch_offer", "addrs": [], "dialable": False, "mapping": "Varying"}, "bad_message"),
        ({"t": "punch_answer", "addrs": [], "dialable": False, "mapping": "v" * 17}, "bad_message"),
        (
            {"t": "punch_answer", "addrs": [], "dialable": False, "mapping": b"varying"},
            "bad_message",
        ),
        ({"t": "punch_stop"}, "unknown_message"),
    ],
)
def test_invalid_extension_messages_raise_decode_error(value: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_message_untrusted(encode(value))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "msg",
    [
        Caps(()),
        Caps(("punch",)),
        Caps(tuple(sorted(f"c{i}" for i in range(32)))),
        PunchOffer((), False),
        PunchOffer((("192.0.2.1", 1), ("2001:db8::1", 65535)), True),
        PunchAnswer(A + B, False),
        PunchOffer(A, False, "consistent"),
        PunchAnswer(B, False, "varying"),
        PunchAnswer(B, False, "a_later_name_abc"),  # unknown names are kept, treated as unknown
        PunchGo(),
    ],
)
def test_extension_messages_round_trip(msg: Any) -> None:
    assert decode_message_untrusted(encode_message(msg)) == msg


_ips = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)
)  # canonical text forms
_addrs = st.lists(st.tuples(_ips, st.integers(1, 65535)), max_size=4).map(tuple)


@seed(1601)
@settings(max_examples=200, deadline=None)
@given(addrs=_addrs, dialable=st.booleans(), offer=st.booleans())
def test_punch_addresses_round_trip(
    addrs: tuple[tuple[str, int], ...], dialable: bool, offer: bool
) -> None:
    msg = PunchOffer(addrs, dialable) if offer else PunchAnswer(addrs, dialable)
    assert decode_message_untrusted(encode_message(msg)) == msg


@pytest.mark.parametrize(
    "path, direction, role",
    [
        ("relayed", "inbound", INITIATOR),
        ("relayed", "outbound", RESPONDER),
        ("direct", "inbound", None),
        ("punched", "outbound", None),
        ("reversed", "inbound", None),
    ],
)
def test_the_end_that_accepted_the_relayed_link_initiates(
    path: str, direction: str, role: str | None
) -> None:
    assert punch_role(path, direction) == role


def test_candidates_pair_each_observed_ip_with_the_link_port() -> None:
    assert candidate_addrs(["203.0.113.9", "bogus", "2001:db8::1", "198.51.100.1"], 4001) == (
        ("198.51.100.1", 4001),
        ("203.0.113.9", 4001),
        ("2001:db8::1", 4001),
    )
    assert candidate_addrs(["203.0.113.9"], 0) == ()


def _pair(
    i_dialable: bool,
    r_dialable: bool,
    i_addrs: tuple[tuple[str, int], ...] = A,
    r_addrs: tuple[tuple[str, int], ...] = B,
    rtt: float = 0.2,
    i_mapping: str | None = None,
    r_mapping: str | None = None,
) -> tuple[list[Any], list[Any]]:
    """Run one attempt through a fake link: the actions each side ends with."""
    ini = PunchSession(INITIATOR, 0.0)
    res = PunchSession(RESPONDER, 0.0)
    assert ini.next_attempt() == 0.0 and res.next_attempt() is None
    [offer] = ini.start(1.0, i_addrs, i_dialable, i_mapping)
    assert isinstance(offer, SendPunch)
    [answer] = res.receive(offer.message, 1.0 + rtt / 2, r_addrs, r_dialable, r_mapping)
    assert isinstance(answer, SendPunch)
    got = ini.receive(answer.message, 1.0 + rtt)
    sent = [a for a in got if isinstance(a, SendPunch)]
    i_rest = [a for a in got if not isinstance(a, SendPunch)]
    r_rest: list[Any] = []
    for s in sent:
        r_rest += res.receive(s.message, 1.0 + 1.5 * rtt)
    return i_rest, r_rest


@pytest.mark.parametrize(
    "i_dialable, r_dialable, path, i_connects, r_connects, i_noise",
    [
        (False, False, "punched", True, True, True),  # simultaneous open
        (False, True, "reversed", True, False, True),  # reversal: H dials D
        (True, False, "reversed", False, True, False),  # D dials H (H was dialable after all)
        (True, True, "reversed", True, False, True),
    ],
)
def test_who_connects_follows_the_dialable_flags(
    i_dialable: bool, r_dialable: bool, path: str, i_connects: bool, r_connects: bool, i_noise: bool
) -> None:
    [i_dial], [r_dial] = _pair(i_dialable, r_dialable)
    assert isinstance(i_dial, Dial) and isinstance(r_dial, Dial)
    assert i_dial.path == r_dial.path == path
    assert (i_dial.addrs == B) is i_connects and (i_dial.addrs == ()) is not i_connects
    assert (r_dial.addrs == A) is r_connects and (r_dial.addrs == ()) is not r_connects
    # Exactly one Noise initiator on the new connection.
    assert i_dial.noise_initiator is i_noise and r_dial.noise_initiator is not i_noise


def test_the_initiator_connects_half_the_rtt_after_its_go() -> None:
    [i_dial], [r_dial] = _pair(False, False, rtt=0.4)
    assert i_dial.at == pytest.approx(1.4 + 0.2)  # answer at 1.4, plus rtt / 2
    assert r_dial.at == pytest.approx(1.6)  # the go arrives rtt / 2 after it left
    assert i_dial.until - i_dial.at == PunchLimits().dial_window


def test_the_delay_is_capped() -> None:
    [i_dial], _ = _pair(False, False, rtt=30.0)
    assert i_dial.at == pytest.approx(31.0 + PunchLimits().max_delay)


def test_no_addresses_fail_without_a_dial() -> None:
    i_rest, r_rest = _pair(False, False, r_addrs=())
    assert i_rest == [Failed("no_addresses")] and r_rest == []


@pytest.mark.parametrize(
    "role, state_msgs, bad",
    [
        (INITIATOR, [], PunchOffer(A, False)),  # offers go the other way
        (INITIATOR, [], PunchAnswer(A, False)),  # nothing offered
        (INITIATOR, [], PunchGo()),
        (RESPONDER, [], PunchGo()),  # no offer answered
        (RESPONDER, [], PunchAnswer(A, False)),
        (RESPONDER, [PunchOffer(A, False)], PunchOffer(A, False)),  # one at a time
        (RESPONDER, [], Clock(())),
    ],
)
def test_a_message_out_of_turn_is_bad_state(role: str, state_msgs: list[Any], bad: Any) -> None:
    session = PunchSession(role, 0.0)
    for m in state_msgs:
        session.receive(m, 1.0, B, False)
    with pytest.raises(ProtocolError) as info:
        session.receive(bad, 1.0, B, False)
    assert info.value.reason == "bad_state"


def test_an_unanswered_offer_fails_after_the_answer_timeout() -> None:
    s = PunchSession(INITIATOR, 0.0)
    s.start(0.0, A, False)
    assert s.poll(4.9) == []
    assert s.poll(5.0) == [Failed("no_answer")]
    assert s.next_attempt() == 5.0 + 5.0  # the first retry delay


def test_a_responder_refuses_more_offers_than_a_round_allows() -> None:
    s = PunchSession(RESPONDER, 0.0)
    for k in range(3):
        s.receive(PunchOffer(A, False), float(k), B, False)
        s.receive(PunchGo(), float(k), B, False)
        s.finished(False, float(k))
    with pytest.raises(ProtocolError) as info:
        s.receive(PunchOffer(A, False), 3.0, B, False)
    assert info.value.reason == "punch_flood"
    # After the cooldown an offer is welcome again.
    s.receive(PunchOffer(A, False), 600.0 + 1.0, B, False)


@seed(1602)
@settings(max_examples=100, deadline=None)
@given(gaps=st.lists(st.floats(0.0, 2000.0), min_size=1, max_size=30))
def test_attempts_are_bounded_per_cooldown(gaps: list[float]) -> None:
    """Whatever the timing, a failing initiator starts at most three attempts
    in any ten minutes."""
    s = PunchSession(INITIATOR, 0.0)
    limits = PunchLimits()
    now, starts = 0.0, []
    for gap in gaps:
        now += gap
        due = s.next_attempt()
        if due is None or due > now:
            continue
        s.start(now, A, False)
        starts.append(now)
        s.poll(now + limits.answer_timeout)  # no answer: failed
        now += limits.answer_timeout
    for k, t in enumerate(starts):
        window = [x for x in starts[k:] if x < t + limits.cooldown]
        assert len(window) <= limits.attempts_per_round


def test_success_ends_the_attempts() -> None:
    [i_dial], _ = _pair(False, False)
    s = PunchSession(INITIATOR, 0.0)
    s.start(0.0, A, False)
    [_, dial] = s.receive(PunchAnswer(B, False), 0.1)
    assert isinstance(dial, Dial) and isinstance(i_dial, Dial)
    s.finished(True, 1.0)
    assert s.next_attempt() is None


@pytest.mark.parametrize(
    "i_map, r_map, i_side, r_side",
    [
        ("consistent", "varying", "easy", "hard"),
        ("varying", "consistent", "hard", "easy"),
        ("consistent", "consistent", None, None),  # an ordinary simultaneous open
        ("unknown", "varying", None, None),
        ("varying", "a_later_name", None, None),  # a name we do not know is unknown
        ("varying", None, None, None),  # the responder did not agree to spray
        (None, "varying", None, None),
    ],
)
def test_a_consistent_and_a_varying_nat_make_a_spray(
    i_map: str | None, r_map: str | None, i_side: str | None, r_side: str | None
) -> None:
    """spec/sync.md §12.9: who sprays what, from the two mapping behaviours."""
    [i_dial], [r_dial] = _pair(False, False, rtt=0.4, i_mapping=i_map, r_mapping=r_map)
    assert isinstance(i_dial, Dial) and isinstance(r_dial, Dial)
    assert (i_dial.spray, r_dial.spray) == (i_side, r_side)
    assert i_dial.path == r_dial.path == "punched"
    assert i_dial.noise_initiator and not r_dial.noise_initiator
    assert i_dial.addrs == B and r_dial.addrs == A
    lim = PunchLimits()
    moment = (
        1.6  # the answer at 1.4 plus rtt / 2 for the initiator; the go's arrival for the responder
    )
    for dial, side in ((i_dial, i_side), (r_dial, r_side)):
        if side is None:
            assert dial.count == 0 and dial.until - dial.at == pytest.approx(lim.dial_window)
        elif side == "hard":
            assert dial.count == lim.spray_sockets
            assert dial.at == pytest.approx(moment)
            assert dial.until == pytest.approx(moment + lim.spray_window)
        else:
            assert dial.count == lim.spray_probes
            # The easy side starts after the hard side has made its mappings.
            assert dial.at == pytest.approx(moment + lim.spray_delay)
            assert dial.until == pytest.approx(moment + lim.spray_window)


def test_two_varying_nats_fail_without_a_connect() -> None:
    i_rest, r_rest = _pair(False, False, i_mapping="varying", r_mapping="varying")
    # As with no addresses, no go is sent; the responder forgets the attempt (no_go).
    assert i_rest == [Failed("both_varying")] and r_rest == []


def test_a_dialable_side_reverses_whatever_the_mappings() -> None:
    [i_dial], [r_dial] = _pair(False, True, i_mapping="varying", r_mapping="consistent")
    assert i_dial.path == r_dial.path == "reversed"
    assert i_dial.spray is None and r_dial.spray is None


def test_the_mapping_is_sent_only_when_given() -> None:
    s = PunchSession(INITIATOR, 0.0)
    [offer] = s.start(0.0, A, False)
    assert isinstance(offer, SendPunch) and offer.message == PunchOffer(A, False, None)
    r = PunchSession(RESPONDER, 0.0)
    [answer] = r.receive(PunchOffer(A, False, "varying"), 0.1, B, False, "consistent")
    assert isinstance(answer, SendPunch) and answer.message == PunchAnswer(B, False, "consistent")
    assert b"mapping" not in encode_message(PunchOffer(A, False))
