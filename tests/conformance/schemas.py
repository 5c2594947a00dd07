"""Every advertised microversion against Tempest's response schemas.

Tempest's tests call each API at the microversions they were written for; a response
that is wrong only at some other advertised microversion goes unseen. This sweep reads
the cloud's resources at every compute microversion from 2.1 to the cloud's maximum and
every volume microversion from 3.0 to its maximum, through Tempest's own service
clients, which pick the schema for the version asked and validate each response
(JSON Schema, `additionalProperties: false` where Nova and Cinder promise it).

    from schemas import sweep
    failures = sweep(cloud, found)     # [] when every response matches
"""

import time

from tempest.lib import auth
from tempest.lib import exceptions
from tempest.lib.services.compute import base_compute_client
from tempest.lib.services.compute import (
    aggregates_client,
    flavors_client,
    hypervisor_client,
    interfaces_client,
    keypairs_client,
    limits_client,
    migrations_client,
    quotas_client,
    server_groups_client,
    servers_client,
    services_client,
)
from tempest.lib.services.volume import base_client as volume_base
from tempest.lib.services.volume.v3 import backups_client, volumes_client
from tempest.lib.services.volume.v3 import services_client as volume_services_client
from tempest.lib.services.volume.v3 import snapshots_client, transfers_client, types_client


# Reads whose Tempest schema stops being Nova's at some microversion: checked up to it.
STALE = {
    # Tempest has no schema past 2.53 for hypervisors; Nova shows `uptime` in them from
    # 2.88, which the 2.53 schema refuses.
    "hypervisors.list_hypervisors(detail)": "2.87",
}


def versions(first, last):
    """'2.1'..'2.96' as strings, in order."""
    major, lo = (int(x) for x in first.split("."))
    _, hi = (int(x) for x in last.split("."))
    return [f"{major}.{minor}" for minor in range(lo, hi + 1)]


def wait_for(what, fetch, want, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fetch()
        if value == want:
            return
        if value in ("ERROR", "error"):
            raise RuntimeError(f"{what} went to {value}")
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not become {want}")


def sweep(cloud, found, admin_password):
    creds = auth.KeystoneV3Credentials(
        username="admin",
        password=admin_password,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
    )
    provider = auth.KeystoneV3AuthProvider(creds, cloud.auth_url)
    provider.fill_credentials()
    project_id = provider.credentials.project_id
    kw = {"endpoint_type": "publicURL"}

    def client(module, cls, service):
        return getattr(module, cls)(provider, service, "RegionOne", **kw)

    servers = client(servers_client, "ServersClient", "compute")
    compute = {
        "flavors": client(flavors_client, "FlavorsClient", "compute"),
        "keypairs": client(keypairs_client, "KeyPairsClient", "compute"),
        "limits": client(limits_client, "LimitsClient", "compute"),
        "quotas": client(quotas_client, "QuotasClient", "compute"),
        "groups": client(server_groups_client, "ServerGroupsClient", "compute"),
        "hypervisors": client(hypervisor_client, "HypervisorClient", "compute"),
        "aggregates": client(aggregates_client, "AggregatesClient", "compute"),
        "services": client(services_client, "ServicesClient", "compute"),
        "interfaces": client(interfaces_client, "InterfacesClient", "compute"),
        "migrations": client(migrations_client, "MigrationsClient", "compute"),
    }
    volumes = client(volumes_client, "VolumesClient", "volumev3")
    volume = {
        "snapshots": client(snapshots_client, "SnapshotsClient", "volumev3"),
        "backups": client(backups_client, "BackupsClient", "volumev3"),
        "types": client(types_client, "TypesClient", "volumev3"),
        "services": client(volume_services_client, "ServicesClient", "volumev3"),
        "transfers": client(transfers_client, "TransfersClient", "volumev3"),
        "transfers_v355": client(transfers_client, "TransfersV355Client", "volumev3"),
    }

    # What the reads find: a server with a port and a volume, resized once, a key
    # pair, a server group, an aggregate; a volume with a snapshot and a backup. They stay: the
    # conformance cloud is thrown away after the run.
    base_compute_client.COMPUTE_MICROVERSION = None
    volume_base.VOLUME_MICROVERSION = None
    server = servers.create_server(
        name="schema-sweep", imageRef=found["images"][0], flavorRef=found["flavors"][0]
    )["server"]
    wait_for("server", lambda: servers.show_server(server["id"])["server"]["status"], "ACTIVE")
    # A resize, confirmed: a migration record to read.
    servers.resize_server(server["id"], found["flavors"][1])
    wait_for("resize", lambda: servers.show_server(server["id"])["server"]["status"], "VERIFY_RESIZE")
    servers.confirm_resize_server(server["id"])
    wait_for("confirm", lambda: servers.show_server(server["id"])["server"]["status"], "ACTIVE")
    compute["keypairs"].create_keypair(name="schema-sweep")
    group = compute["groups"].create_server_group(name="schema-sweep", policies=["affinity"])["server_group"]
    aggregate = compute["aggregates"].create_aggregate(name="schema-sweep")["aggregate"]
    vol = volumes.create_volume(size=1, name="schema-sweep")["volume"]
    wait_for("volume", lambda: volumes.show_volume(vol["id"])["volume"]["status"], "available")
    snap = volume["snapshots"].create_snapshot(volume_id=vol["id"], name="schema-sweep")["snapshot"]
    wait_for("snapshot", lambda: volume["snapshots"].show_snapshot(snap["id"])["snapshot"]["status"], "available")
    backup = volume["backups"].create_backup(volume_id=vol["id"], name="schema-sweep")["backup"]
    wait_for("backup", lambda: volume["backups"].show_backup(backup["id"])["backup"]["status"], "available")
    # A volume on offer to another project (with a snapshot that goes along).
    gift = volumes.create_volume(size=1, name="schema-sweep-gift")["volume"]
    wait_for("volume", lambda: volumes.show_volume(gift["id"])["volume"]["status"], "available")
    gift_snap = volume["snapshots"].create_snapshot(volume_id=gift["id"], name="schema-sweep-gift")["snapshot"]
    wait_for("snapshot", lambda: volume["snapshots"].show_snapshot(gift_snap["id"])["snapshot"]["status"], "available")
    transfer = volume["transfers"].create_volume_transfer(volume_id=gift["id"])["transfer"]
    flavor = found["flavors"][0]
    port = compute["interfaces"].list_interfaces(server["id"])["interfaceAttachments"]

    compute_reads = {
        "servers.list_servers(detail)": lambda: servers.list_servers(detail=True),
        "servers.list_servers": lambda: servers.list_servers(),
        "servers.show_server": lambda: servers.show_server(server["id"]),
        "servers.list_addresses": lambda: servers.list_addresses(server["id"]),
        "servers.list_server_metadata": lambda: servers.list_server_metadata(server["id"]),
        "servers.list_instance_actions": lambda: servers.list_instance_actions(server["id"]),
        "servers.list_volume_attachments": lambda: servers.list_volume_attachments(server["id"]),
        "servers.list_security_groups_by_server": lambda: servers.list_security_groups_by_server(server["id"]),
        "flavors.list_flavors(detail)": lambda: compute["flavors"].list_flavors(detail=True),
        "flavors.show_flavor": lambda: compute["flavors"].show_flavor(flavor),
        "flavors.list_flavor_extra_specs": lambda: compute["flavors"].list_flavor_extra_specs(flavor),
        "keypairs.list_keypairs": lambda: compute["keypairs"].list_keypairs(),
        "keypairs.show_keypair": lambda: compute["keypairs"].show_keypair("schema-sweep"),
        "limits.show_limits": lambda: compute["limits"].show_limits(),
        "quotas.show_quota_set": lambda: compute["quotas"].show_quota_set(project_id),
        "quotas.show_quota_set(detail)": lambda: compute["quotas"].show_quota_set(project_id, detail=True),
        "quotas.show_default_quota_set": lambda: compute["quotas"].show_default_quota_set(project_id),
        "server_groups.list_server_groups": lambda: compute["groups"].list_server_groups(),
        "server_groups.show_server_group": lambda: compute["groups"].show_server_group(group["id"]),
        "hypervisors.list_hypervisors(detail)": lambda: compute["hypervisors"].list_hypervisors(detail=True),
        "aggregates.list_aggregates": lambda: compute["aggregates"].list_aggregates(),
        "aggregates.show_aggregate": lambda: compute["aggregates"].show_aggregate(aggregate["id"]),
        "services.list_services": lambda: compute["services"].list_services(),
        "interfaces.list_interfaces": lambda: compute["interfaces"].list_interfaces(server["id"]),
        "migrations.list_migrations": lambda: compute["migrations"].list_migrations(),
    }
    if port:
        compute_reads["interfaces.show_interface"] = lambda: compute["interfaces"].show_interface(
            server["id"], port[0]["port_id"]
        )
    volume_reads = {
        "volumes.list_volumes(detail)": lambda: volumes.list_volumes(detail=True),
        "volumes.list_volumes": lambda: volumes.list_volumes(),
        "volumes.show_volume": lambda: volumes.show_volume(vol["id"]),
        "volumes.show_volume_metadata": lambda: volumes.show_volume_metadata(vol["id"]),
        "snapshots.list_snapshots(detail)": lambda: volume["snapshots"].list_snapshots(detail=True),
        "snapshots.show_snapshot": lambda: volume["snapshots"].show_snapshot(snap["id"]),
        "backups.list_backups(detail)": lambda: volume["backups"].list_backups(detail=True),
        "backups.show_backup": lambda: volume["backups"].show_backup(backup["id"]),
        "types.list_volume_types": lambda: volume["types"].list_volume_types(),
        "services.list_services": lambda: volume["services"].list_services(),
        "transfers.list_volume_transfers(detail)": lambda: volume["transfers"].list_volume_transfers(detail=True),
        "transfers.show_volume_transfer": lambda: volume["transfers"].show_volume_transfer(transfer["id"]),
        "transfers_v355.list_volume_transfers(detail)": lambda: volume["transfers_v355"].list_volume_transfers(
            detail=True
        ),
        "transfers_v355.show_volume_transfer": lambda: volume["transfers_v355"].show_volume_transfer(transfer["id"]),
    }
    # Reads of paths that begin at a later version.
    since = {
        "transfers_v355.list_volume_transfers(detail)": "3.55",
        "transfers_v355.show_volume_transfer": "3.55",
    }

    failures = []
    checked = 0
    try:
        for v in versions("2.1", found["compute_max"]):
            base_compute_client.COMPUTE_MICROVERSION = v
            for name, read in compute_reads.items():
                if name in STALE and int(v.split(".")[1]) > int(STALE[name].split(".")[1]):
                    continue
                checked += 1
                try:
                    read()
                except (exceptions.InvalidHTTPResponseBody, exceptions.TempestException) as e:
                    failures.append(f"compute {v} {name}: {' '.join(str(e).split())[:400]}")
        for v in versions("3.0", found["volume_max"]):
            volume_base.VOLUME_MICROVERSION = v
            for name, read in volume_reads.items():
                if name in since and int(v.split(".")[1]) < int(since[name].split(".")[1]):
                    continue
                checked += 1
                try:
                    read()
                except (exceptions.InvalidHTTPResponseBody, exceptions.TempestException) as e:
                    failures.append(f"volume {v} {name}: {' '.join(str(e).split())[:400]}")
    finally:
        base_compute_client.COMPUTE_MICROVERSION = None
        volume_base.VOLUME_MICROVERSION = None
    print(f"== schema sweep: {checked} responses at every advertised microversion, {len(failures)} not matching")
    return failures
