"""Which devmig agent serves which compute host.

The agents file is the one ``devmig --agents`` reads: one ``[agents.<host>]`` table per
compute host (the name Nova knows it by: its service host, or its hypervisor hostname), with
``url``, ``token_file`` and, for ``https://`` agents, ``ca_file``. Relative paths resolve from
the file's directory. devmig-nova also reads an optional ``[nova]`` table:
``claim_ttl_seconds`` (default 900: long enough for the pre-check and the migration's start)
and ``timeout_seconds`` per agent call (default 10).

The file is ``$DEVMIG_NOVA_AGENTS``, else ``/etc/devmig/nova-agents.toml``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from devmig_nova.client import AgentClient, DevmigError

DEFAULT_PATH = "/etc/devmig/nova-agents.toml"


@dataclass(frozen=True)
class AgentEntry:
    """One agent."""

    url: str
    token_file: Path
    ca_file: Path | None


class Agents:
    """The agents file, loaded."""

    def __init__(self, entries: dict[str, AgentEntry], *, ttl: int = 900, timeout: float = 10.0) -> None:
        self.entries = entries
        self.ttl = ttl
        self.timeout = timeout

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Agents:
        """Reads and checks ``path``; errors name the file and the key."""
        p = Path(path)
        with p.open("rb") as f:
            data = tomllib.load(f)
        unknown = set(data) - {"agents", "nova"}
        if unknown:
            raise ValueError(f"{p}: unknown tables {sorted(unknown)} (agents, nova)")
        entries: dict[str, AgentEntry] = {}
        for host, t in data.get("agents", {}).items():
            if not isinstance(t, dict) or not isinstance(t.get("url"), str) or not isinstance(t.get("token_file"), str):
                raise ValueError(f"{p}: [agents.{host}] needs url and token_file")
            extra = set(t) - {"url", "token_file", "ca_file", "client_cert", "client_key"}
            if extra:
                raise ValueError(f"{p}: [agents.{host}] has unknown keys {sorted(extra)}")
            ca = t.get("ca_file")
            entries[host] = AgentEntry(
                url=t["url"],
                token_file=(p.parent / t["token_file"]).resolve(),
                ca_file=(p.parent / ca).resolve() if isinstance(ca, str) else None,
            )
        nova = data.get("nova", {})
        ttl = nova.get("claim_ttl_seconds", 900)
        timeout = nova.get("timeout_seconds", 10)
        if not isinstance(ttl, int) or not 1 <= ttl <= 86400:
            raise ValueError(f"{p}: [nova] claim_ttl_seconds must be 1..=86400")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"{p}: [nova] timeout_seconds must be positive")
        return cls(entries, ttl=ttl, timeout=float(timeout))

    @classmethod
    def from_environment(cls) -> Agents | None:
        """The configured agents file, or None when there is none (devmig is then off)."""
        path = os.environ.get("DEVMIG_NOVA_AGENTS", DEFAULT_PATH)
        return cls.load(path) if Path(path).exists() else None

    def client(self, *hosts: str | None) -> AgentClient:
        """The client of the first of ``hosts`` the file names; KeyError naming them when none is,
        DevmigError when its token file cannot be read."""
        for host in hosts:
            if host and host in self.entries:
                e = self.entries[host]
                try:
                    token = e.token_file.read_text().strip()
                except OSError as err:
                    raise DevmigError(0, "token_file", f"agent of {host}: token file {e.token_file}: {err}") from None
                ca = str(e.ca_file) if e.ca_file else None
                return AgentClient(e.url, token, ca_file=ca, timeout=self.timeout)
        names = ", ".join(h for h in hosts if h)
        raise KeyError(f"no devmig agent is configured for host {names}")
