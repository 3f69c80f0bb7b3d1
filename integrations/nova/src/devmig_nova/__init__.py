"""devmig for OpenStack Nova.

- :mod:`devmig_nova.client`: a client of a devmig agent's REST API (token, TLS).
- :mod:`devmig_nova.config`: which agent serves which compute host (an agents file).
- :mod:`devmig_nova.precheck`: the destination's pre-check, free of Nova: read each source
  device's version from the source's agent, claim a target for each on the destination's
  agent (step b under the claim), release or complete the claims.
- :mod:`devmig_nova.nova_hooks`: what the patch to Nova's libvirt driver calls.
- :mod:`devmig_nova.filter`: a scheduler filter for live migrations.
"""

from devmig_nova.client import AgentClient, DevmigError, Refused
from devmig_nova.config import Agents

__all__ = ["AgentClient", "Agents", "DevmigError", "Refused"]
