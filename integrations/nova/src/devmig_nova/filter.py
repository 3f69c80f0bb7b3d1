"""A Nova scheduler filter for live migrations of instances with vGPUs.

Enable it (no change to Nova needed) in ``nova.conf`` on the scheduler::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = devmig_nova.filter.DevmigLiveMigrationFilter
    enabled_filters = ...,DevmigLiveMigrationFilter

For a request that is a live migration (Nova keeps a ``live-migration`` Migration record,
status ``accepted``, while it schedules; its source allocations are held by the migration),
the filter finds the source pGPUs in the migration's allocations, asks the source host's devmig
agent for the version strings of the mdevs on them, and passes a candidate host only when its
agent's ``match`` (step a, then the vendor's check on each candidate) accepts one of them. Nova
does not record which mdev belongs to which instance outside libvirt, so every mdev of the
allocated pGPUs counts: the filter can keep a host the instance's own mdev would not fit (the
pre-check then refuses it), never drops one it would. A host it drops is logged with devmig's
reason. Anything it cannot read (an agent down, no agent configured) drops the host: an error
never passes as compatible. Other requests pass untouched.
"""

from __future__ import annotations

import time
from typing import Any

from nova import context as nova_context
from nova import objects
from nova.scheduler import filters
from nova.scheduler.client import report
from oslo_log import log as logging

from devmig_nova.client import DevmigError
from devmig_nova.config import Agents

LOG = logging.getLogger(__name__)

#: The longest one request's source versions are kept (they are reused across its hosts).
SOURCES_TTL = 60.0


def pci_address(nodedev: str) -> str | None:
    """``pci_0000_81_00_0`` -> ``0000:81:00.0`` (libvirt's node device name of a PCI device)."""
    parts = nodedev.split("_")
    if len(parts) != 5 or parts[0] != "pci":
        return None
    return f"{parts[1]}:{parts[2]}:{parts[3]}.{parts[4]}"


def unmet_text(unmet: dict[str, Any]) -> str:
    """A constraint step a found unmet, as ``match`` prints it, with the target's value."""
    c = unmet.get("constraint", {})
    attr, op = c.get("attr"), c.get("op")
    if op == "semver_compatible":
        text = f"{attr} is {c.get('major')}.x with minor >= {c.get('min_minor')}"
    elif op == "equals":
        text = f"{attr} == {c.get('value', {}).get('value')}"
    elif op == "one_of":
        text = f"{attr} in [{','.join(c.get('values', []))}]"
    elif op == "contains":
        text = f"{attr} contains {c.get('value')}"
    elif op == "superset":
        text = f"{attr} contains all of [{','.join(c.get('values', []))}]"
    else:
        text = str(c)
    have = unmet.get("target_value")
    shown = have.get("value") if isinstance(have, dict) else None
    return f"{text} (the target has {shown if shown is not None else 'nothing'})"


class DevmigLiveMigrationFilter(filters.BaseHostFilter):  # type: ignore[misc]
    """Passes only hosts whose devices devmig says can take the instance's vGPUs."""

    RUN_ON_REBUILD = False

    def __init__(self) -> None:
        super().__init__()
        # Per request (the RequestSpec object itself: Nova calls host_passes once per host with
        # the same one): when, the request, the agents file and its sources.
        self._sources: dict[int, tuple[float, Any, Agents | None, set[str] | str | None]] = {}

    def _source_versions(self, ctx: Any, spec_obj: Any, agents: Agents) -> set[str] | str | None:
        """The versions of the mdevs on the source pGPUs the migration holds; None when the
        request is no live migration with vGPUs; a message when they cannot be read."""
        try:
            migrations = objects.MigrationList.get_by_filters(
                ctx,
                {
                    "instance_uuid": spec_obj.instance_uuid,
                    "migration_type": "live-migration",
                    "status": ["accepted", "queued", "preparing"],
                },
            )
            if not migrations:
                return None
            migration = migrations[0]
            placement = report.report_client_singleton()
            allocations = placement.get_allocations_for_consumer(ctx, migration.uuid)
            node = migration.source_node or migration.source_compute
            parents = []
            for rp_uuid, alloc in allocations.items():
                if "VGPU" not in alloc.get("resources", {}):
                    continue
                name = placement.get_resource_provider_name(ctx, rp_uuid)
                address = pci_address(name[len(node) + 1 :]) if name.startswith(f"{node}_") else None
                if address is None:
                    return f"the source pGPU provider {name} is not named <node>_pci_<address>"
                parents.append(address)
        except Exception as e:  # Nova's database or Placement: the host cannot be judged.
            return f"the migration's source allocations cannot be read: {e}"
        if not parents:
            return None
        try:
            source = agents.client(migration.source_compute, migration.source_node)
            mdevs = [d["id"] for d in source.devices() if d.get("kind") == "mdev" and d.get("parent") in parents]
            versions = {source.version(m) for m in mdevs}
        except (DevmigError, KeyError) as e:
            return f"the source's devices cannot be read: {e}"
        return versions or f"the source's agent shows no mdev on {', '.join(parents)}"

    def host_passes(self, host_state: Any, spec_obj: Any) -> bool:
        key = spec_obj.instance_uuid
        now = time.monotonic()
        for k in [k for k, v in self._sources.items() if now - v[0] > SOURCES_TTL]:
            del self._sources[k]
        cached = self._sources.get(id(spec_obj))
        if cached is None or cached[1] is not spec_obj:
            # Once per request: the agents file and the source's versions.
            agents = Agents.from_environment()
            sources = None
            if agents is not None:
                ctx = getattr(spec_obj, "_context", None) or nova_context.get_admin_context()
                sources = self._source_versions(ctx, spec_obj, agents)
            cached = (now, spec_obj, agents, sources)
            self._sources[id(spec_obj)] = cached
        _, _, agents, sources = cached
        if agents is None or sources is None:  # devmig is off, or no live migration with vGPUs
            return True
        if isinstance(sources, str):
            LOG.info("DevmigLiveMigrationFilter: %s filtered out for %s: %s", host_state.host, key, sources)
            return False
        try:
            agent = agents.client(host_state.host, host_state.nodename)
            reasons = []
            for version in sorted(sources):
                result = agent.match(version)
                accepted = [
                    c["device"]
                    for c in result.get("candidates", [])
                    if not c.get("unusable") and c.get("verdict") in ("identical", "compatible")
                ]
                if accepted:
                    return True
                reasons.append(f"{version}: {self._why(result)}")
        except (DevmigError, KeyError) as e:
            reasons = [f"its devices cannot be checked: {e}"]
        LOG.info(
            "DevmigLiveMigrationFilter: %s filtered out for %s: no device takes the source (%s)",
            host_state.host,
            key,
            "; ".join(reasons),
        )
        return False

    @staticmethod
    def _why(result: dict[str, Any]) -> str:
        """The closest candidate's first refusal, as devmig names it."""
        for c in result.get("candidates", []):
            for r in c.get("reasons", []):
                if "source_value" in r:
                    return f"{c['device']}: {r.get('code')} ({r.get('source_value')} -> {r.get('target_value')})"
            if c.get("unmet"):
                return f"{c['device']}: {unmet_text(c['unmet'][0])}"
            if c.get("unusable"):
                return f"{c['device']}: {c['unusable']}"
        return "no migratable device"
