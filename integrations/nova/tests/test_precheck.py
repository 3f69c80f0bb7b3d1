"""The pre-check against real devmig agents over emulated hosts: versions from the source,
targets claimed on the destination with the vendor's check, refusals with the rule, nothing
left behind by a refusal, completion and rollback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from devmig_nova import precheck
from devmig_nova.client import AgentClient, DevmigError
from devmig_nova.config import Agents
from lab import TOKEN, Host, agents_file

SRC_MDEV = "5c3b1a2e-1111-4a4a-8b8b-000000000001"
SRC_MDEV_12 = "5c3b1a2e-1111-4a4a-8b8b-000000000002"


def make(hosts: dict[str, Host], name: str, version: str) -> Host:
    hosts[name] = Host(name, version)
    return hosts[name]


def client(h: Host) -> AgentClient:
    return AgentClient(h.url, TOKEN)


def mdevs(h: Host) -> set[str]:
    return {p.name for p in (h.mnt / "sys/bus/mdev/devices").iterdir()}


def test_a_compatible_target_is_claimed_completed_and_kept(hosts: dict[str, Host]) -> None:
    src, dst = make(hosts, "src", "0.2"), make(hosts, "dest", "0.3")
    src.create_mdev("0000:81:00.0", "nvidia-11", SRC_MDEV)
    versions = precheck.source_versions(client(src), [SRC_MDEV])
    assert versions == {SRC_MDEV: "mtty-v1-0.2.0-nvidia-11"}
    instance = str(uuid.uuid4())
    seen: list[str] = []
    targets = precheck.claim_targets(
        client(dst), instance, versions, [precheck.Pgpu("0000:81:00.0", "nvidia-11")], 600, lambda p, t: seen.append(t)
    )
    target = targets[SRC_MDEV]
    assert seen == [target] and dst.mdev_exists(target)
    claims = client(dst).claims()
    assert [(c["migration_id"], c["device"], c["state"]) for c in claims] == [(f"nova-{instance}.0", target, "active")]
    # Claiming again (a retried pre-check) gives the same target.
    again = precheck.claim_targets(client(dst), instance, versions, [precheck.Pgpu("0000:81:00.0", "nvidia-11")], 600)
    assert again == targets
    assert precheck.complete(client(dst), instance) == 1
    assert client(dst).claims() == [] and dst.mdev_exists(target), "the VM keeps its mdev"
    assert precheck.release(client(dst), instance) == 0, "nothing active is left to release"
    assert dst.mdev_exists(target)


def test_a_refusal_names_the_rule_per_pgpu_and_leaves_nothing(hosts: dict[str, Host]) -> None:
    src, dst = make(hosts, "src", "0.2"), make(hosts, "dest", "0.1")
    src.create_mdev("0000:81:00.0", "nvidia-11", SRC_MDEV)
    versions = precheck.source_versions(client(src), [SRC_MDEV])
    pgpus = [precheck.Pgpu("0000:81:00.0", "nvidia-11"), precheck.Pgpu("0000:81:01.0", "nvidia-11")]
    with pytest.raises(precheck.NoTarget) as e:
        precheck.claim_targets(client(dst), str(uuid.uuid4()), versions, pgpus, 600)
    text = str(e.value)
    assert "mtty.driver_version_minor (0.2.0 -> 0.1.0)" in text, text
    assert "0000:81:00.0/nvidia-11" in text and "0000:81:01.0/nvidia-11" in text
    assert client(dst).claims() == [] and mdevs(dst) == set(), "a refused claim leaves no mdev"


def test_the_next_pgpu_is_tried_and_a_partial_claim_is_undone(hosts: dict[str, Host]) -> None:
    src, dst = make(hosts, "src", "0.2"), make(hosts, "dest", "0.2")
    src.create_mdev("0000:81:00.0", "nvidia-11", SRC_MDEV)
    src.create_mdev("0000:81:01.0", "nvidia-12", SRC_MDEV_12)
    one = precheck.source_versions(client(src), [SRC_MDEV])
    # nvidia-12 has two ports, the source one: the first pGPU refuses, the second takes it.
    pgpus = [precheck.Pgpu("0000:81:00.0", "nvidia-12"), precheck.Pgpu("0000:81:01.0", "nvidia-11")]
    targets = precheck.claim_targets(client(dst), str(uuid.uuid4()), one, pgpus, 600)
    assert (dst.mnt / f"sys/class/mdev_bus/0000:81:01.0/{targets[SRC_MDEV]}").exists()
    # Two sources, and only nvidia-11 targets: the first is claimed, the second fits nowhere,
    # so the first claim is released again and its mdev removed.
    both = precheck.source_versions(client(src), [SRC_MDEV, SRC_MDEV_12])
    before = mdevs(dst)
    with pytest.raises(precheck.NoTarget, match="mtty.ports"):
        precheck.claim_targets(client(dst), str(uuid.uuid4()), both, [precheck.Pgpu("0000:81:00.0", "nvidia-11")], 600)
    assert mdevs(dst) == before
    assert len(client(dst).claims()) == 1, "only the first test's claim is active"


def test_rollback_releases_the_claims_and_removes_their_mdevs(hosts: dict[str, Host]) -> None:
    src, dst = make(hosts, "src", "0.2"), make(hosts, "dest", "0.2")
    src.create_mdev("0000:81:00.0", "nvidia-11", SRC_MDEV)
    instance = str(uuid.uuid4())
    versions = precheck.source_versions(client(src), [SRC_MDEV])
    targets = precheck.claim_targets(client(dst), instance, versions, [precheck.Pgpu("0000:81:00.0", "nvidia-11")], 600)
    assert precheck.release(client(dst), instance) == 1
    assert not dst.mdev_exists(targets[SRC_MDEV]) and client(dst).claims() == []


def test_errors_are_errors_never_a_pass(hosts: dict[str, Host], tmp_path: Path) -> None:
    src = make(hosts, "src", "0.2")
    with pytest.raises(DevmigError) as e:
        client(src).version("5c3b1a2e-1111-4a4a-8b8b-00000000dead")
    assert e.value.status == 404
    with pytest.raises(DevmigError) as e:
        AgentClient(src.url, "wrong-token-0123456789").claims()
    assert e.value.status == 401
    with pytest.raises(DevmigError) as e:
        AgentClient("http://127.0.0.1:9", TOKEN, timeout=2).claims()
    assert e.value.status == 0 and e.value.code == "unreachable"
    with pytest.raises(precheck.NoTarget, match="names no pGPU"):
        precheck.claim_targets(client(src), "i", {SRC_MDEV: "mtty-v1-0.2.0-nvidia-11"}, [], 600)
    with pytest.raises(ValueError, match="plain http"):
        AgentClient("ftp://x", TOKEN)


def test_the_agents_file_resolves_relative_paths_and_names_bad_keys(hosts: dict[str, Host], tmp_path: Path) -> None:
    src = make(hosts, "src", "0.2")
    (tmp_path / "t").write_text(TOKEN + "\n")
    good = tmp_path / "good.toml"
    good.write_text(f'[agents.src]\nurl = "{src.url}"\ntoken_file = "t"\n[nova]\nclaim_ttl_seconds = 60\n')
    agents = Agents.load(good)
    assert agents.ttl == 60 and agents.client(None, "src").claims() == []
    with pytest.raises(KeyError, match="no devmig agent is configured for host other"):
        agents.client("other")
    gone = tmp_path / "gone.toml"
    gone.write_text(f'[agents.src]\nurl = "{src.url}"\ntoken_file = "missing"\n')
    with pytest.raises(DevmigError) as e:
        Agents.load(gone).client("src")
    assert e.value.code == "token_file" and "missing" in e.value.detail
    bad = tmp_path / "bad.toml"
    bad.write_text('[agents.src]\nurl = "http://x"\ntoken_file = "t"\nport = 1\n')
    with pytest.raises(ValueError, match=r"\[agents.src\] has unknown keys \['port'\]"):
        Agents.load(bad)
    assert agents_file(tmp_path, [src]).read_text().startswith("[agents.src]")


def test_an_https_agent_is_verified_against_its_ca(hosts: dict[str, Host], tmp_path: Path) -> None:
    src = hosts["src"] = Host("src", "0.2", tls=True)
    assert src.url.startswith("https://127.0.0.1:") and src.ca_file is not None
    src.create_mdev("0000:81:00.0", "nvidia-11", SRC_MDEV)
    assert AgentClient(src.url, TOKEN, ca_file=str(src.ca_file)).version(SRC_MDEV) == "mtty-v1-0.2.0-nvidia-11"
    with pytest.raises(ValueError, match="needs a CA file"):
        AgentClient(src.url, TOKEN)
    # Another CA: the certificate is refused, an error and never an answer.
    other = tmp_path / "other"
    other.mkdir()
    from lab import pki

    with pytest.raises(DevmigError) as e:
        AgentClient(src.url, TOKEN, ca_file=str(pki(other))).version(SRC_MDEV)
    assert e.value.status == 0 and "CERTIFICATE_VERIFY_FAILED" in e.value.detail
    # The agents file carries the CA.
    agents = Agents.load(agents_file(tmp_path, [src]))
    assert agents.client("src").version(SRC_MDEV) == "mtty-v1-0.2.0-nvidia-11"
