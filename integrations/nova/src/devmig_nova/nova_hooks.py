"""What the patch to Nova's libvirt driver calls (``patches/nova-34.0.0-devmig.patch``).

Active when an agents file is configured (:mod:`devmig_nova.config`); without one, Nova runs
unchanged. On the destination, in ``check_source_migrate_data_at_dest``: each source mdev's
version is read from the source host's agent, and a target is claimed for it on this host's
agent on the pGPUs Placement allocated (step b: the vendor's answer, under the claim) instead
of Nova matching types by name; a refusal is a ``MigrationPreCheckError`` carrying devmig's
reason, after which the conductor tries the next host. After the migration the claims are
completed (``post_live_migration_at_destination``) or released on rollback
(``rollback_live_migration_at_destination``).
"""

from __future__ import annotations

from typing import Any

from nova import exception
from nova.conf import CONF
from oslo_log import log as logging

from devmig_nova import precheck
from devmig_nova.client import DevmigError
from devmig_nova.config import Agents

LOG = logging.getLogger(__name__)


def enabled() -> bool:
    """True when an agents file is configured."""
    return Agents.from_environment() is not None


def _agents() -> Agents:
    agents = Agents.from_environment()
    if agents is None:
        raise exception.MigrationPreCheckError(reason="devmig: the agents file went away")
    return agents


def _pgpus(driver: Any, allocs: dict[str, Any]) -> list[precheck.Pgpu]:
    """The pGPUs the destination's allocation names, as ``_allocate_mdevs`` finds them."""
    out = []
    roots = [r.name for r in driver.provider_tree.roots]
    for rp_uuid in driver._vgpu_allocations(allocs):
        name = driver.provider_tree.data(rp_uuid).name
        root = next((r for r in roots if name.startswith(r + "_")), None)
        if root is None:
            continue
        nodedev = name[len(root) + 1 :]
        address = driver._get_device_address(nodedev)
        mdev_type = driver._get_vgpu_type_per_pgpu(nodedev)
        if address and mdev_type:
            out.append(precheck.Pgpu(address=address, mdev_type=mdev_type))
    return out


def claim_mdev_targets(
    driver: Any, instance: Any, src_mdev_types: dict[str, str], migration: Any, allocs: dict[str, Any]
) -> dict[str, str]:
    """``{source mdev uuid: target mdev uuid}``, every target verified and claimed by devmig;
    ``MigrationPreCheckError`` with devmig's reason otherwise."""
    agents = _agents()
    here = driver._host.get_hostname()
    try:
        source = agents.client(migration.source_compute, migration.source_node)
        target = agents.client(here, getattr(migration, "dest_compute", None), CONF.host)
    except KeyError as e:
        raise exception.MigrationPreCheckError(reason=f"devmig: {e.args[0]}") from None
    except DevmigError as e:
        raise exception.MigrationPreCheckError(reason=f"devmig: {e}") from None
    try:
        pgpus = _pgpus(driver, allocs)
    except ValueError as e:  # a provider the allocation names is not in this host's tree
        raise exception.MigrationPreCheckError(reason=f"Unable to migrate {instance.uuid}: devmig: {e}") from None
    try:
        versions = precheck.source_versions(source, src_mdev_types)
        targets = precheck.claim_targets(target, instance.uuid, versions, pgpus, agents.ttl)
    except precheck.NoTarget as e:
        raise exception.MigrationPreCheckError(reason=f"Unable to migrate {instance.uuid}: {e}") from None
    except DevmigError as e:
        raise exception.MigrationPreCheckError(reason=f"Unable to migrate {instance.uuid}: devmig: {e}") from None
    LOG.info("devmig claimed target mdevs for %s (source: target): %s", instance.uuid, targets)
    return targets


def _settle(driver: Any, instance: Any, action: str) -> None:
    try:
        agent = _agents().client(driver._host.get_hostname())
        n = precheck.complete(agent, instance.uuid) if action == "complete" else precheck.release(agent, instance.uuid)
        LOG.info("devmig: %s %d claim(s) of %s", "completed" if action == "complete" else "released", n, instance.uuid)
    except (DevmigError, KeyError, exception.MigrationPreCheckError) as e:
        # The claims expire at their ttl anyway; the operator sees why they were not settled now.
        LOG.warning("devmig: could not %s the claims of %s: %s", action, instance.uuid, e)


def migration_completed(driver: Any, instance: Any) -> None:
    """The VM runs on its targets: its claims end, the mdevs stay."""
    _settle(driver, instance, "complete")


def migration_rolled_back(driver: Any, instance: Any) -> None:
    """The migration failed: its claims are released and their mdevs removed."""
    _settle(driver, instance, "release")
