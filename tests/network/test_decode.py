"""Docker's network bodies decoded into NetworkSpec / EndpointSpec: every bad field is a 400
naming it (conflicts with existing networks are tested in test_networks.py)."""

from __future__ import annotations

import pytest

from hyperd.api import decode
from hyperd.api.fields import Fields
from hyperd.api.networks import network_spec
from hyperd.errors import InvalidArgument
from hyperd.network import NetworkSpec


def test_docker_cli_body_decodes():
    """What `docker network create --subnet --gateway --ip-range --internal --label -o` sends."""
    body = {
        "Name": "back",
        "CheckDuplicate": True,
        "Driver": "bridge",
        "Scope": "",
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [
                {"Subnet": "10.77.0.0/24", "IPRange": "10.77.0.128/25", "Gateway": "10.77.0.1"}
            ],
        },
        "Internal": True,
        "Attachable": False,
        "Ingress": False,
        "ConfigOnly": False,
        "ConfigFrom": None,
        "Options": {"com.docker.network.driver.mtu": "1400"},
        "Labels": {"tier": "back"},
    }  # fmt: skip
    assert network_spec(body) == NetworkSpec(
        name="back",
        internal=True,
        labels={"tier": "back"},
        options={"com.docker.network.driver.mtu": "1400"},
        subnet="10.77.0.0/24",
        gateway="10.77.0.1",
        ip_range="10.77.0.128/25",
    )


def test_compose_body_decodes():
    """docker-py as docker-compose calls it: nulls for what it leaves out."""
    body = {"Name": "p_default", "Driver": None, "Options": None, "IPAM": None,
            "CheckDuplicate": True, "Internal": False, "Attachable": True,
            "Labels": {"com.docker.compose.project": "p"}, "EnableIPv6": False}  # fmt: skip
    spec = network_spec(body)
    assert (spec.name, spec.driver, spec.subnet, spec.attachable) == (
        "p_default",
        "bridge",
        "",
        True,
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({"Name": 5}, "Name"),
        ({"Name": "n", "Internal": "yes"}, "Internal"),
        ({"Name": "n", "Labels": ["a=b"]}, "Labels"),
        ({"Name": "n", "Options": {"a": 1}}, "Options"),
        ({"Name": "n", "IPAM": []}, "IPAM"),
        ({"Name": "n", "IPAM": {"Driver": "dhcp"}}, "IPAM.Driver"),
        ({"Name": "n", "IPAM": {"Config": {"Subnet": "10.0.0.0/8"}}}, "IPAM.Config"),
        ({"Name": "n", "IPAM": {"Config": [{"Subnet": 10}]}}, "IPAM.Config[0].Subnet"),
        ({"Name": "n", "IPAM": {"Config": [{"Subnet": "a"}, {"Subnet": "b"}]}}, "IPAM.Config"),
        ({"Name": "n", "IPAM": {"Config": [{"AuxiliaryAddresses": {"a": "1.2.3.4"}}]}}, "Auxil"),
        ({"Name": "n", "EnableIPv6": True}, "EnableIPv6"),
        ({"Name": "n", "Ingress": True}, "Ingress"),
    ],
)
def test_malformed_network_bodies_name_the_field(body, field):
    with pytest.raises(InvalidArgument, match=field.replace("[", r"\[").replace("]", r"\]")) as e:
        network_spec(body)
    assert e.value.status == 400


def test_endpoint_config_decodes_and_checks_the_address():
    ep = decode.endpoint_spec(
        Fields({"Aliases": ["www"], "Links": ["db"], "IPAMConfig": {"IPv4Address": "10.77.0.9"}})
    )
    assert (ep.aliases, ep.links, ep.ipv4_address) == (["www"], ["db:db"], "10.77.0.9")
    with pytest.raises(InvalidArgument, match=r"EndpointConfig.IPAMConfig.IPv4Address") as e:
        decode.endpoint_spec(Fields({"IPAMConfig": {"IPv4Address": "10.77.0"}}, "EndpointConfig"))
    assert e.value.status == 400


def test_endpoint_mac_and_link_local_addresses():
    """EndpointSettings.MacAddress (lower-cased, unicast) and IPAMConfig.LinkLocalIPs (IPv4)
    are kept; a bad one is a 400 naming the field."""
    ep = decode.endpoint_spec(
        Fields({"MacAddress": "02:42:AC:11:00:02", "IPAMConfig": {"LinkLocalIPs": ["169.254.8.8"]}})
    )
    assert (ep.mac_address, ep.link_local_ips) == ("02:42:ac:11:00:02", ["169.254.8.8"])
    for body, field in (
        ({"MacAddress": "03:00:00:00:00:01"}, "EndpointConfig.MacAddress"),
        ({"IPAMConfig": {"LinkLocalIPs": ["fe80::1"]}}, "EndpointConfig.IPAMConfig.LinkLocalIPs"),
        ({"IPAMConfig": {"LinkLocalIPs": "169.254.1.1"}}, "EndpointConfig.IPAMConfig.LinkLocalIPs"),
    ):
        with pytest.raises(InvalidArgument, match=field) as e:
            decode.endpoint_spec(Fields(body, "EndpointConfig"))
        assert e.value.status == 400
