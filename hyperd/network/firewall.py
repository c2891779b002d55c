"""NAT, forwarding and isolation rules for each network's bridge: iptables, in our own chains.

Debian 12's ``iptables`` is the nf_tables flavour (iptables-nft); there is no well-kept
Python binding for it, so this module runs ``iptables -w`` and checks every return code.
It only ever touches its own chains and the jumps into them, never anyone else's rules:

    nat     HYPER-POSTROUTING  <- POSTROUTING
              -s SUBNET ! -o BRIDGE -j MASQUERADE          (guests reach the outside;
                                                            not for internal networks)
    nat     HYPER-DNAT         <- PREROUTING -m addrtype --dst-type LOCAL
                               <- OUTPUT -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8
              ! -i BRIDGE -p PROTO [-d HOSTIP] --dport HOSTPORT -j DNAT --to-destination IP:PORT
    filter  HYPER-FORWARD      <- FORWARD (inserted first, ahead of e.g. Docker's DROP)
              -j HYPER-ISOLATION-1                         (first: isolation decides first)
              -i BRIDGE -j ACCEPT                          (guests' own traffic)
              -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT
                                                           (replies and published ports)
    filter  HYPER-ISOLATION-1  (Docker's DOCKER-ISOLATION-STAGE-1)
              -i BRIDGE ! -o BRIDGE -j HYPER-ISOLATION-2   (leaving a network...)
              -i BRIDGE ! -o BRIDGE -j DROP                (internal: nothing leaves,
              ! -i BRIDGE -o BRIDGE -j DROP                 nothing enters)
    filter  HYPER-ISOLATION-2
              -o BRIDGE -j DROP                            (...into another network: dropped)

So each network's guests reach the outside (through NAT) but never another network's
bridge; the host itself still reaches every bridge (that traffic is not forwarded).
Traffic to a bridge that is neither a reply nor a published port is not accepted here
(it falls through to the host's own FORWARD policy). Loopback is not DNATed (that would need
route_localnet); the userland proxy in ports.py serves ``127.0.0.1:PORT``.

Every rule of ours names its bridge, so networks (and daemons with different bridges) share
the chains: ``teardown()`` deletes every rule naming this bridge and removes a chain (and its
jumps) only once no bridge's rule is left in it; ``purge(bridge)`` does the same for a
bridge whose network is gone (leftovers after a crash). Every change is checked with ``-C``
first, so repeating it is harmless.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
import threading

from hyperd.errors import HyperError, InvalidArgument

POSTROUTING = "HYPER-POSTROUTING"
DNAT = "HYPER-DNAT"
FORWARD = "HYPER-FORWARD"
ISOLATION1 = "HYPER-ISOLATION-1"
ISOLATION2 = "HYPER-ISOLATION-2"

# (table, chain jumped from, match args of the jump, our chain, insert first?)
JUMPS = [
    ("nat", "POSTROUTING", [], POSTROUTING, False),
    ("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL"], DNAT, False),
    (
        "nat",
        "OUTPUT",
        ["-m", "addrtype", "--dst-type", "LOCAL", "!", "-d", "127.0.0.0/8"],
        DNAT,
        False,
    ),
    ("filter", "FORWARD", [], FORWARD, True),
    ("filter", FORWARD, [], ISOLATION1, True),
]
CHAINS = [
    ("nat", POSTROUTING),
    ("nat", DNAT),
    ("filter", FORWARD),
    ("filter", ISOLATION1),
    ("filter", ISOLATION2),
]
OURS = {chain for _, chain in CHAINS}
PROTOS = ("tcp", "udp")


class FirewallError(HyperError):
    """An iptables command failed."""


def _names_bridge(args: list[str], bridge: str) -> bool:
    """Does a rule (``iptables -S`` arguments) match on ``-i``/``-o`` of ``bridge``?"""
    pairs = zip(args[:-1], args[1:], strict=True)
    return any(flag in ("-i", "-o") and value == bridge for flag, value in pairs)


def _bridges_of(args: list[str]) -> set[str]:
    pairs = zip(args[:-1], args[1:], strict=True)
    return {value for flag, value in pairs if flag in ("-i", "-o")}


class Firewall:
    """The rules of one bridge and its subnet (``internal``: no way in or out but the host)."""

    def __init__(
        self,
        bridge: str = "hyper0",
        subnet: str = "10.213.0.0/16",
        iptables: str = "iptables",
        internal: bool = False,
    ):
        self.bridge = bridge
        try:
            self.subnet = str(ipaddress.IPv4Network(subnet, strict=True))
        except ValueError as exc:
            raise InvalidArgument(f"invalid subnet {subnet!r}: {exc}") from None
        self.iptables = iptables
        self.internal = internal
        self._lock = threading.RLock()

    # -- iptables -----------------------------------------------------------------------

    def _run(self, table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        exe = shutil.which(self.iptables) or self.iptables
        cmd = [exe, "-w", "-t", table, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise FirewallError(
                f"{self.iptables} not found (install the iptables package)"
            ) from None
        except subprocess.TimeoutExpired:
            raise FirewallError(f"{shlex.join(cmd)} timed out (xtables lock held?)") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            raise FirewallError(f"{shlex.join(cmd[1:])} failed ({proc.returncode}): {detail}")
        return proc

    def _chain_exists(self, table: str, chain: str) -> bool:
        return self._run(table, "-n", "-L", chain, check=False).returncode == 0

    def _has(self, table: str, chain: str, spec: list[str]) -> bool:
        return self._run(table, "-C", chain, *spec, check=False).returncode == 0

    def _ensure(self, table: str, chain: str, spec: list[str], first: bool = False) -> None:
        if not self._has(table, chain, spec):
            if first:
                self._run(table, "-I", chain, "1", *spec)
            else:
                self._run(table, "-A", chain, *spec)

    def _delete_all(self, table: str, chain: str, spec: list[str]) -> None:
        """Delete every copy of a rule (there should be one)."""
        for _ in range(100):
            if not self._has(table, chain, spec):
                return
            self._run(table, "-D", chain, *spec)

    def _listing(self, table: str, chain: str | None = None) -> list[str]:
        args = ["-S"] + ([chain] if chain else [])
        proc = self._run(table, *args, check=False)
        return proc.stdout.splitlines() if proc.returncode == 0 else []

    def _rules_in(self, table: str, chain: str) -> list[list[str]]:
        """The rules of one chain as argument lists for -C/-D."""
        prefix = f"-A {chain} "
        return [shlex.split(x)[2:] for x in self._listing(table, chain) if x.startswith(prefix)]

    # -- base rules ---------------------------------------------------------------------

    def _base_rules(self) -> list[tuple[str, str, list[str]]]:
        b = self.bridge
        leave = ["-i", b, "!", "-o", b]
        out = [
            ("filter", FORWARD, ["-i", b, "-j", "ACCEPT"]),
            (
                "filter",
                FORWARD,
                ["-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT"]
                + ["-j", "ACCEPT"],
            ),
            ("filter", ISOLATION2, ["-o", b, "-j", "DROP"]),
        ]
        if self.internal:
            out += [
                ("filter", ISOLATION1, [*leave, "-j", "DROP"]),
                ("filter", ISOLATION1, ["!", "-i", b, "-o", b, "-j", "DROP"]),
            ]
        else:
            out += [
                ("nat", POSTROUTING, ["-s", self.subnet, "!", "-o", b, "-j", "MASQUERADE"]),
                ("filter", ISOLATION1, [*leave, "-j", ISOLATION2]),
            ]
        return out

    def setup(self) -> None:
        """Create the chains, the jumps into them and the bridge's rules (idempotent)."""
        with self._lock:
            for table, chain in CHAINS:
                if not self._chain_exists(table, chain):
                    proc = self._run(table, "-N", chain, check=False)
                    if proc.returncode != 0 and not self._chain_exists(table, chain):
                        raise FirewallError(
                            f"cannot create chain {chain} in table {table}: {proc.stderr.strip()}"
                        )
            for table, chain, spec in self._base_rules():
                self._ensure(table, chain, spec)
            for table, builtin, match, target, first in JUMPS:
                self._ensure(table, builtin, [*match, "-j", target], first=first)

    def teardown(self) -> None:
        """Delete this bridge's rules; remove each chain and its jumps once it is empty."""
        self.purge(self.bridge)

    def purge(self, bridge: str) -> list[str]:
        """Delete every rule naming ``bridge`` (any subnet, any kind), then the chains no
        bridge uses any more. Returns the rules deleted, as ``iptables -S`` prints them."""
        deleted = []
        with self._lock:
            for table, chain in CHAINS:
                for spec in self._rules_in(table, chain):
                    if _names_bridge(spec, bridge):
                        self._delete_all(table, chain, spec)
                        deleted.append(shlex.join(["-A", chain, *spec]))
            if not self.bridges():  # another bridge's ports still need the shared chains
                self._drop_empty_chains()
        return deleted

    def _drop_empty_chains(self) -> None:
        for table, chain in CHAINS:
            if not self._chain_exists(table, chain):
                continue
            rules = self._rules_in(table, chain)
            if any(len(spec) != 2 or spec[0] != "-j" or spec[1] not in OURS for spec in rules):
                continue  # a bridge still has rules here
            for t, builtin, match, target, _ in JUMPS:
                if (t, target) == (table, chain) and self._chain_exists(t, builtin):
                    self._delete_all(t, builtin, [*match, "-j", target])
            self._run(table, "-F", chain)
            self._run(table, "-X", chain)

    def bridges(self) -> set[str]:
        """Every interface named (``-i``/``-o``) by a rule in our chains."""
        out: set[str] = set()
        for table, chain in CHAINS:
            for spec in self._rules_in(table, chain):
                out |= _bridges_of(spec)
        return out

    # -- published ports ----------------------------------------------------------------

    def _port_spec(self, proto: str, host_ip: str, host_port: int, ip: str, port: int) -> list:
        if proto not in PROTOS:
            raise InvalidArgument(f"invalid protocol {proto!r} (tcp or udp)")
        try:
            ipaddress.IPv4Address(ip)
            if host_ip:
                ipaddress.IPv4Address(host_ip)
        except ValueError as exc:
            raise InvalidArgument(f"invalid address in port mapping: {exc}") from None
        for p in (host_port, port):
            if not 1 <= int(p) <= 65535:
                raise InvalidArgument(f"invalid port {p} in port mapping")
        spec = ["!", "-i", self.bridge, "-p", proto]
        if host_ip and host_ip != "0.0.0.0":
            spec += ["-d", f"{host_ip}/32"]
        spec += ["-m", proto, "--dport", str(host_port)]
        return spec + ["-j", "DNAT", "--to-destination", f"{ip}:{port}"]

    def add_port(self, proto: str, host_ip: str, host_port: int, ip: str, port: int) -> None:
        """DNAT ``host_ip:host_port/proto`` (any local address if empty/0.0.0.0) to ip:port."""
        spec = self._port_spec(proto, host_ip, host_port, ip, port)
        with self._lock:
            if not self._chain_exists("nat", DNAT):
                raise FirewallError(f"chain {DNAT} is missing (call setup first)")
            self._ensure("nat", DNAT, spec)

    def remove_port(self, proto: str, host_ip: str, host_port: int, ip: str, port: int) -> None:
        """Remove the DNAT rule of a port mapping (nothing happens if it is absent)."""
        spec = self._port_spec(proto, host_ip, host_port, ip, port)
        with self._lock:
            if self._chain_exists("nat", DNAT):
                self._delete_all("nat", DNAT, spec)

    def _port_specs(self) -> list[list[str]]:
        """The DNAT rules of this bridge, as argument lists for -C/-D."""
        out = []
        for line in self._listing("nat", DNAT):
            if not line.startswith(f"-A {DNAT} "):
                continue
            args = shlex.split(line)[2:]
            if "DNAT" in args and _names_bridge(args, self.bridge):
                out.append(args)
        return out

    def ports(self) -> list[tuple[str, str, int, str, int]]:
        """This bridge's DNAT rules as (proto, host_ip, host_port, ip, port)."""
        out = []
        for args in self._port_specs():
            opts = dict(zip(args[:-1], args[1:], strict=False))
            host_ip = opts.get("-d", "0.0.0.0").removesuffix("/32")
            dest = opts.get("--to-destination", "")
            ip, _, port = dest.rpartition(":")
            try:
                out.append((opts.get("-p", ""), host_ip, int(opts["--dport"]), ip, int(port)))
            except (KeyError, ValueError):
                continue
        return out

    # -- inspection ---------------------------------------------------------------------

    def rules(self) -> dict[str, list[str]]:
        """Every rule in or jumping to a HYPER- chain, per table, as ``iptables -S`` prints."""
        return {
            table: [line for line in self._listing(table) if "HYPER-" in line]
            for table in ("nat", "filter")
        }
