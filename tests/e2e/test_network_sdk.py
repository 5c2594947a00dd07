"""The network API through openstacksdk's own proxy, as scripts and Terraform-like tools
use it: resource creation, server-side filters, pagination and error classes."""

import openstack
import openstack.exceptions
import pytest

from conftest import unique

# PostgreSQL + NATS (see conftest).
BACKEND = "postgres"


@pytest.fixture(scope="module")
def conn(cloud):
    c = openstack.connect(
        auth_url=cloud.auth_url,
        username="admin",
        password="e2e-admin-pw",
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
    )
    yield c
    c.close()


def test_sdk_network_lifecycle(conn):
    net = conn.network.create_network(name=unique("sdk"))
    sub = conn.network.create_subnet(network_id=net.id, cidr="10.77.0.0/24", ip_version=4, name=unique("sdk"))
    assert sub.gateway_ip == "10.77.0.1" and sub.allocation_pools == [{"start": "10.77.0.2", "end": "10.77.0.254"}]
    ports = [conn.network.create_port(network_id=net.id, name=f"p{i}") for i in range(5)]
    addresses = {p.fixed_ips[0]["ip_address"] for p in ports}
    assert len(addresses) == 5
    # Server-side filter and the SDK's pagination (it follows ports_links).
    listed = list(conn.network.ports(network_id=net.id, limit=2))
    assert sorted(p.id for p in listed) == sorted(p.id for p in ports)
    found = conn.network.find_port("p3", network_id=net.id)
    assert found.id == ports[3].id
    conn.network.update_port(ports[0], name="renamed")
    assert conn.network.get_port(ports[0].id).name == "renamed"
    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.delete_network(net)
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.network.create_subnet(network_id=net.id, cidr="10.77.0.0/25", ip_version=4)
    with pytest.raises(openstack.exceptions.ResourceNotFound):
        conn.network.get_network("00000000-0000-0000-0000-000000000000")
    for p in ports:
        conn.network.delete_port(p)
    conn.network.delete_network(net)
    assert conn.network.find_network(net.id) is None


def test_sdk_security_group_rules(conn):
    sg = conn.network.create_security_group(name=unique("sdk-sg"))
    rule = conn.network.create_security_group_rule(
        security_group_id=sg.id, direction="ingress", ethertype="IPv4", protocol="tcp",
        port_range_min=443, port_range_max=443, remote_ip_prefix="0.0.0.0/0",
    )
    rules = list(conn.network.security_group_rules(security_group_id=sg.id))
    assert rule.id in {r.id for r in rules} and len(rules) == 3
    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.create_security_group_rule(
            security_group_id=sg.id, direction="ingress", ethertype="IPv4", protocol="tcp",
            port_range_min=443, port_range_max=443,
        )
    conn.network.delete_security_group(sg)
