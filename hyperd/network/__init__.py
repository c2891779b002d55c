"""Host networking for hyper's VMs: networks (bridges), taps, IPv4 addresses, NAT, ports.

    net = Network(bridge="hyper0", subnet="10.213.0.0/16", db_path=root / "network.db")
    net.setup()                              # every network's bridge, ip_forward, iptables
    rec = net.create(NetworkSpec("backend")) # a user-defined bridge network
    ep = net.attach(cid, "backend")          # Endpoint(ip, prefix, gateway, mac, tap, ...)
    net.publish(cid, parse_ports(["8080:80"]))  # to its first network: proxies, then DNAT
    ...                                      # boot the VM with one NIC per endpoint
    net.detach(cid)                          # ports, taps and addresses gone
    net.reconcile(live_cids)                 # at start-up: drop what dead containers left

Networks follow Docker's bridge driver: each is its own Linux bridge with its own subnet,
addresses, NAT out (unless internal) and isolation from the others (firewall.py). ``bridge``
(the default, ``hyper0``) and ``none`` are predefined; ``host`` cannot exist with VMs.

Every method is synchronous (netlink, iptables, SQLite); call them through
``asyncio.to_thread`` from the daemon's loop. The userland port proxies run on an event loop
of their own, in a thread started on first use. The embedded DNS server of user-defined
networks (dns.py) is the exception: asyncio, on the daemon's loop, fed by the containers
(hyperd/containers/resolver.py).

Default subnet: ``10.213.0.0/16``. It avoids Docker's ``172.17.0.0/16`` (and the 172.16/12
range Docker allocates more bridges from), podman's ``10.88.0.0/16``, libvirt's default
``192.168.122.0/24``, and the ``192.168.x`` and ``10.0.x``/``10.1.x`` networks that home and
office LANs and VPNs use most. ``setup()`` refuses (Conflict) a subnet that overlaps an address
on another interface, so a clash shows up as a clear error, and the subnet is configurable.
User-defined networks take their subnets from pools (pool.py) unless given one.

State that reconciliation needs is in SQLite (the ``db_path`` file): ``networks``
(records.py), ``endpoints`` (ipam.py) and ``published_ports`` (published.py). Bridges and taps
are named after their network and owner (bridge.py), and every firewall rule names its bridge
(firewall.py), so after a crash everything left behind can be found and removed by name.
One networking daemon per network namespace.
"""

from hyperapi.portspec import PortBinding, parse_port_spec, parse_ports

from .bridge import NetworkError, tap_name
from .firewall import FirewallError
from .ipam import mac_for
from .manager import (
    DEFAULT_BRIDGE,
    DEFAULT_DB,
    DEFAULT_SUBNET,
    Endpoint,
    Forbidden,
    Network,
    SpareNic,
)
from .pool import DEFAULT_POOLS, AddressPool, parse_pools
from .records import DEFAULT, HOST, HOST_REFUSED, NONE, NetworkRecord, NetworkSpec

__all__ = [
    "DEFAULT",
    "DEFAULT_BRIDGE",
    "DEFAULT_DB",
    "DEFAULT_POOLS",
    "DEFAULT_SUBNET",
    "HOST",
    "HOST_REFUSED",
    "NONE",
    "AddressPool",
    "Endpoint",
    "SpareNic",
    "FirewallError",
    "Forbidden",
    "Network",
    "NetworkError",
    "NetworkRecord",
    "NetworkSpec",
    "PortBinding",
    "mac_for",
    "parse_pools",
    "parse_port_spec",
    "parse_ports",
    "tap_name",
]
