"""Sans-IO Kademlia: routing table, lookup iterator, records and datagram codec.

spec/dht.md is the normative description; p2psocial.node.dht is the trio
service that drives these pieces over a UDP socket.
"""

from .lookup import DisjointLookup, Finished, Lookup, Query, Waiting
from .records import (
    HEAD,
    PROFILE,
    RecordRejected,
    RecordStore,
    SwarmStore,
    TokenIssuer,
    ValueStore,
    encode_profile_record,
    head_key,
    profile_key,
    swarm_key,
    validate_record,
)
from .routing import AddOutcome, AddResult, Contact, RoutingTable, distance
from .wire import (
    HELLO_TAG,
    MAX_DATAGRAM,
    Request,
    Response,
    decode_datagram_untrusted,
    encode_request,
    encode_response,
)

__all__ = [
    "HEAD",
    "HELLO_TAG",
    "MAX_DATAGRAM",
    "PROFILE",
    "AddOutcome",
    "AddResult",
    "Contact",
    "DisjointLookup",
    "Finished",
    "Lookup",
    "Query",
    "RecordRejected",
    "RecordStore",
    "Request",
    "Response",
    "RoutingTable",
    "SwarmStore",
    "TokenIssuer",
    "ValueStore",
    "Waiting",
    "decode_datagram_untrusted",
    "distance",
    "encode_profile_record",
    "encode_request",
    "encode_response",
    "head_key",
    "profile_key",
    "swarm_key",
    "validate_record",
]
