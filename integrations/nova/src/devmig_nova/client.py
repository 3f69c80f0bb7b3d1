"""A client of one devmig agent's REST API (``/api/v1``), standard library only.

Every call carries the agent's bearer token; ``https://`` agents are verified against a CA
file. An agent's refusal (a problem document) becomes :class:`DevmigError` with its status,
stable code and detail; a claim the agent refuses because of the devices (``409``, ``422``)
is :class:`Refused`, whose ``reason`` names the rule when the agent sent a check report.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, cast


class DevmigError(Exception):
    """The agent answered with an error, or could not be reached (status 0)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{detail} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.detail = detail


class Refused(DevmigError):
    """The devices say no: the target rejects the source, is taken, or has no room."""

    @property
    def reason(self) -> str:
        """The refusal in one line, naming the rule where the agent gave one."""
        return self.detail


def _rules(report: dict[str, Any]) -> str:
    """The reasons of a check report, as ``code (source -> target)`` or ``code: message``."""
    parts = []
    for r in report.get("reasons", []):
        if not isinstance(r, dict):
            continue
        if "source_value" in r or "target_value" in r:
            parts.append(f"{r.get('code')} ({r.get('source_value')} -> {r.get('target_value')})")
        else:
            parts.append(f"{r.get('code')}: {r.get('message')}")
    return "; ".join(parts)


def segment(device: str) -> str:
    """A device id as one URL path segment (``PARENT/TYPE`` keeps its slash encoded)."""
    return urllib.parse.quote(device, safe="")


class AgentClient:
    """One agent at ``url`` (``https://compute1:7411``) presenting ``token``."""

    def __init__(self, url: str, token: str, *, ca_file: str | None = None, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
            raise ValueError(f"agent URL {url!r} must be a plain http(s) base URL")
        if not token or any(ch.isspace() for ch in token) or not token.isprintable():
            raise ValueError("the agent token must be one printable word")
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None
        if parsed.scheme == "https":
            if ca_file is None:
                raise ValueError(f"agent {url}: an https agent needs a CA file")
            self._context = ssl.create_default_context(cafile=ca_file)

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout, context=self._context) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"code": "bad_response", "detail": raw[:200].decode(errors="replace")}
            if not isinstance(problem, dict):
                problem = {"code": "bad_response", "detail": str(problem)[:200]}
            detail = str(problem.get("detail", ""))
            report = problem.get("report")
            if isinstance(report, dict) and _rules(report):
                detail = f"{detail}: {_rules(report)}"
            code = str(problem.get("code", "error"))
            cls = Refused if e.code in (409, 422) else DevmigError
            raise cls(e.code, code, detail) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise DevmigError(0, "unreachable", f"agent {self.url}: {e}") from None

    def version(self, device: str) -> str:
        """The device's migration_version string (its kernel's, or its vendor model's)."""
        _, body = self._call("GET", f"/api/v1/devices/{segment(device)}/migration-version")
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str):
            raise DevmigError(200, "no_version", f"device {device} has no version on {self.url}: {body}")
        return version

    def devices(self) -> list[dict[str, Any]]:
        """Every device the agent's discovery found."""
        _, body = self._call("GET", "/api/v1/devices")
        return cast(list[dict[str, Any]], body["devices"])

    def match(self, version: str) -> dict[str, Any]:
        """Step a, then step b on each candidate, for a source string (``POST /match``)."""
        _, body = self._call("POST", "/api/v1/match", {"version": version})
        return cast(dict[str, Any], body)

    def claim(self, migration_id: str, source_version: str, target: dict[str, str] | str, ttl: int) -> dict[str, Any]:
        """Verifies and reserves ``target`` (``{"device": D}``, ``{"type": "PARENT/TYPE"}``
        or ``"any"``) for the migration; the same migration id gives back the same claim."""
        body = {"migration_id": migration_id, "source_version": source_version, "target": target, "ttl_seconds": ttl}
        _, claim = self._call("POST", "/api/v1/claims", body)
        return cast(dict[str, Any], claim)

    def claims(self) -> list[dict[str, Any]]:
        """Active and orphaned claims."""
        _, body = self._call("GET", "/api/v1/claims")
        return cast(list[dict[str, Any]], body["claims"])

    def release(self, claim_id: str) -> dict[str, Any]:
        """Releases a claim (an mdev it created is removed)."""
        _, body = self._call("DELETE", f"/api/v1/claims/{segment(claim_id)}")
        return cast(dict[str, Any], body)

    def complete(self, claim_id: str) -> dict[str, Any]:
        """Ends a claim because the migration used its device (the device stays)."""
        _, body = self._call("POST", f"/api/v1/claims/{segment(claim_id)}/complete", {})
        return cast(dict[str, Any], body)
