"""The destination's pre-check, free of Nova.

For the live migration of an instance, each source device ``i`` (sorted by UUID) is claimed
on the destination's agent as ``nova-<instance uuid>.<i>`` (an instance has one live migration
at a time, and the agent keys idempotency on active claims only): the
agent creates the target mdev of the type Nova would use on the pGPU Placement allocated,
writes the source's version string into its ``migration_version`` (step b: the vendor's own
answer) and reserves it, in one call. A refusal is the vendor's: the next pGPU the allocation
names is tried, and when none takes a source every claim made so far is released and
:class:`NoTarget` says why, per pGPU. After the migration the claims are completed (the VM
keeps its mdevs) or, on rollback, released (the agent removes the mdevs it created).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from devmig_nova.client import AgentClient, DevmigError, Refused

#: The prefix of every migration id devmig-nova claims under.
PREFIX = "nova-"


class NoTarget(Exception):
    """No target on the destination takes a source device; the message says why."""


@dataclass(frozen=True)
class Pgpu:
    """A pGPU the destination's allocation names: its PCI address and Nova's type for it."""

    address: str
    mdev_type: str


def claim_id_base(instance_uuid: str) -> str:
    """The migration id devmig-nova claims an instance's targets under (``nova-<uuid>``)."""
    return f"{PREFIX}{instance_uuid}"


def source_versions(agent: AgentClient, mdevs: Iterable[str]) -> dict[str, str]:
    """Each source mdev's version string, read from the source host's agent."""
    return {uuid: agent.version(uuid) for uuid in sorted(mdevs)}


def claim_targets(
    agent: AgentClient,
    instance_uuid: str,
    sources: Mapping[str, str],
    pgpus: list[Pgpu],
    ttl: int,
    on_claimed: Callable[[Pgpu, str], None] | None = None,
) -> dict[str, str]:
    """Claims a target mdev for every source (``{source uuid: version}``) on the pGPUs the
    allocation names, in order; ``{source uuid: target uuid}``. ``on_claimed`` sees each new
    target (what the caller must learn about it). Raises :class:`NoTarget` after releasing
    what it claimed when a source fits nowhere, and lets an unreachable agent's
    :class:`DevmigError` through (never a silent pass)."""
    if not pgpus:
        raise NoTarget("the destination's allocation names no pGPU")
    base = claim_id_base(instance_uuid)
    targets: dict[str, str] = {}
    granted: list[str] = []
    try:
        for i, (src, version) in enumerate(sorted(sources.items())):
            refusals = []
            for pgpu in pgpus:
                try:
                    claim = agent.claim(f"{base}.{i}", version, {"type": f"{pgpu.address}/{pgpu.mdev_type}"}, ttl)
                except Refused as e:
                    refusals.append(f"{pgpu.address}/{pgpu.mdev_type}: {e.reason}")
                    continue
                granted.append(claim["id"])
                targets[src] = claim["device"]
                if on_claimed is not None:
                    on_claimed(pgpu, claim["device"])
                break
            else:
                raise NoTarget(f"devmig: no target on this host takes source mdev {src} ({version}): " + "; ".join(refusals))
    except BaseException:
        for claim_id in granted:
            try:
                agent.release(claim_id)
            except DevmigError:
                pass
        raise
    return targets


def _ours(agent: AgentClient, instance_uuid: str) -> list[str]:
    base = claim_id_base(instance_uuid) + "."
    return [c["id"] for c in agent.claims() if c.get("migration_id", "").startswith(base) and c.get("state") == "active"]


def release(agent: AgentClient, instance_uuid: str) -> int:
    """Releases the instance's active claims (rollback); how many."""
    ids = _ours(agent, instance_uuid)
    for claim_id in ids:
        agent.release(claim_id)
    return len(ids)


def complete(agent: AgentClient, instance_uuid: str) -> int:
    """Completes the instance's active claims (the VM uses the targets now); how many."""
    ids = _ours(agent, instance_uuid)
    for claim_id in ids:
        agent.complete(claim_id)
    return len(ids)
