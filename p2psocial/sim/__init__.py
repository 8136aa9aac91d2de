"""Simulations of the protocol cores at scale (``bench/simulate.py``).

Pure like :mod:`p2psocial.protocol`: virtual time, one seeded generator, no
sockets, clocks or threads. The node never imports it.
"""

from .dht import LookupResult, NetModel, SimDHT, SimNode, sim_groups

__all__ = ["LookupResult", "NetModel", "SimDHT", "SimNode", "sim_groups"]
