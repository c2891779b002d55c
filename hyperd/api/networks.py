"""Network endpoints (Docker's ``/networks``): bridge networks, connect and disconnect.

The network manager (hyperd/network) owns bridges, addresses and rules; the container
service owns which containers join what. Bodies are decoded here into NetworkSpec and
EndpointSpec; a bad field is a 400 that names it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hyperd.containers.networking import remove_network
from hyperd.containers.spec import EndpointSpec
from hyperd.containers.state import parse_rfc3339
from hyperd.errors import InvalidArgument, NotFound
from hyperd.network import Network, NetworkRecord, NetworkSpec
from hyperd.network.records import endpoint_id

from . import common, decode
from .fields import Fields

routes = web.RouteTableDef()
LIST_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}


def _manager(request) -> Network:
    net = common.containers(request).sandboxes.network
    if net is None:
        raise InvalidArgument('hyperd runs without networking (bridge = ""): no networks')
    return net


def _event(request, action: str, rec: NetworkRecord) -> None:
    common.events(request).publish("network", action, rec.id, name=rec.name, type=rec.driver)


# -- decoding ------------------------------------------------------------------------------


def network_spec(body: dict) -> NetworkSpec:
    """``POST /networks/create``."""
    f = Fields(body)
    if f.bool("EnableIPv6"):
        raise InvalidArgument("EnableIPv6: IPv6 networks are not supported")
    for key in ("Ingress", "ConfigOnly"):
        if f.bool(key):
            raise InvalidArgument(f"{key}: not supported (hyper has local bridge networks only)")
    ipam = f.sub("IPAM")
    if ipam.str("Driver") not in ("", "default"):
        raise InvalidArgument(f"IPAM.Driver {ipam.str('Driver')!r} is not supported (default)")
    configs = ipam.object_list("Config")
    if len(configs) > 1:
        raise InvalidArgument("IPAM.Config: one IPv4 subnet per network")
    pool = configs[0] if configs else Fields({})
    aux = pool.str_map("AuxiliaryAddresses")
    if aux and not pool.str("Subnet"):
        raise InvalidArgument(f"{pool.name('AuxiliaryAddresses')}: needs a Subnet")
    return NetworkSpec(
        name=f.str("Name"),
        driver=f.str("Driver") or "bridge",
        internal=f.bool("Internal"),
        attachable=f.bool("Attachable"),
        labels=f.str_map("Labels"),
        options=f.str_map("Options"),
        subnet=pool.str("Subnet"),
        gateway=pool.str("Gateway"),
        ip_range=pool.str("IPRange"),
        ipam_options=ipam.str_map("Options"),
        aux_addresses=aux,
    )


# -- views ---------------------------------------------------------------------------------


def view(rec: NetworkRecord, svc) -> dict:
    """A network in Docker's shape, with the running containers on it."""
    config = []
    if rec.subnet:
        config.append({"Subnet": rec.subnet, "Gateway": rec.gateway})
        if rec.ip_range:
            config[0]["IPRange"] = rec.ip_range
        if rec.aux_addresses:
            config[0]["AuxiliaryAddresses"] = dict(rec.aux_addresses)
    return {
        "Name": rec.name,
        "Id": rec.id,
        "Created": rec.created,
        "Scope": "local",
        "Driver": rec.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": rec.ipam_options or None, "Config": config},
        "Internal": rec.internal,
        "Attachable": rec.attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": _containers(rec, svc),
        "Options": rec.options,
        "Labels": rec.labels,
    }


def _containers(rec: NetworkRecord, svc) -> dict:
    out = {}
    for c in svc.store:
        att = c.networks.get(rec.name)
        if att is not None and att.ip:
            out[c.id] = {
                "Name": c.name,
                "EndpointID": endpoint_id(c.id, rec.id),
                "MacAddress": att.mac,
                "IPv4Address": f"{att.ip}/{att.prefix}",
                "IPv6Address": "",
            }
    return out


def _used(rec: NetworkRecord, svc) -> bool:
    """Does any container (running or not) name this network?"""
    return any(rec.name in c.networks for c in svc.store)


def _matches(rec: NetworkRecord, svc, key: str, value: str) -> bool:
    if key == "name":
        return value in rec.name
    if key == "id":
        return rec.id.startswith(value)
    if key == "driver":
        return rec.driver == value
    if key == "scope":
        return value == "local"
    if key == "type":
        if value not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter 'type={value}' (custom or builtin)")
        return rec.builtin == (value == "builtin")
    if key == "label":
        k, sep, v = value.partition("=")
        return k in rec.labels and (not sep or rec.labels[k] == v)
    if value.lower() not in ("true", "false", "1", "0"):  # dangling
        raise InvalidArgument(f"invalid filter 'dangling={value}'")
    return (not rec.builtin and not _used(rec, svc)) == (value.lower() in ("true", "1"))


# -- routes --------------------------------------------------------------------------------


@routes.post("/networks/create")
async def create(request):
    spec = network_spec(await common.body(request))
    rec = await asyncio.to_thread(_manager(request).create, spec)
    await common.containers(request).dns.sync()
    _event(request, "create", rec)
    return web.json_response({"Id": rec.id, "Warning": ""}, status=201)


@routes.get("/networks")
async def list_(request):
    svc = common.containers(request)
    filters = decode.filters(request.query.get("filters"), LIST_FILTERS)
    if svc.sandboxes.network is None:
        return web.json_response([])
    recs = svc.sandboxes.network.list()
    for key, values in filters.items():
        match = all if key == "label" else any  # Docker: every label, any other value
        recs = [r for r in recs if match(_matches(r, svc, key, v) for v in values)]
    return web.json_response([view(r, svc) for r in recs])


@routes.get("/networks/{id}")
async def inspect(request):
    ref = request.match_info["id"]
    if common.containers(request).sandboxes.network is None:
        raise NotFound(f"network {ref} not found")  # a daemon without networking has none
    rec = _manager(request).get(ref)
    return web.json_response(view(rec, common.containers(request)))


@routes.delete("/networks/{id}")
async def remove(request):
    rec = await remove_network(common.containers(request), request.match_info["id"])
    _event(request, "destroy", rec)
    return web.Response(status=204)


async def _container_body(request) -> tuple[Fields, str]:
    """A connect/disconnect body and the container it names (required)."""
    f = Fields(await common.body(request))
    container = f.str("Container")
    if not container:
        raise InvalidArgument("Container is required")
    return f, container


@routes.post("/networks/{id}/connect")
async def connect(request):
    f, container = await _container_body(request)
    ep = decode.endpoint_spec(f.sub("EndpointConfig")) if f.has("EndpointConfig") else None
    svc = common.containers(request)
    await svc.connect(container, request.match_info["id"], ep or EndpointSpec())
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect(request):
    f, container = await _container_body(request)
    svc = common.containers(request)
    await svc.disconnect(container, request.match_info["id"], f.bool("Force"))
    return web.Response(status=200)


@routes.post("/networks/prune")
async def prune(request):
    f = decode.filters(request.query.get("filters"), {"label", "until"})
    until = decode.timestamp({"until": f["until"][0]}, "until") if f.get("until") else None
    svc = common.containers(request)
    net = svc.sandboxes.network
    removed = []
    for rec in net.list() if net is not None else []:
        if rec.builtin or _used(rec, svc):
            continue
        if until is not None and parse_rfc3339(rec.created) >= until:
            continue
        if not all(_matches(rec, svc, "label", v) for v in f.get("label", [])):
            continue
        await remove_network(svc, rec.id)
        _event(request, "destroy", rec)
        removed.append(rec.name)
    common.events(request).publish("network", "prune", "")
    return web.json_response({"NetworksDeleted": removed or None})
