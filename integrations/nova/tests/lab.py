"""Real devmig agents over mounted simfs hosts, for the tests (needs root: FUSE).

A host is ``devmig sim mount`` of a spec (two pGPUs at 0000:81:00.0 and 0000:81:01.0, as
Nova's fake libvirt has them, with types nvidia-11 and nvidia-12) and ``devmig agent`` on
127.0.0.1:0 over it. The fake ``nvidia-*`` types map onto devmig's mtty model through a
catalog file (mtty types with 1 and 2 ports), so the vendor rules are mtty's: the same type,
the same driver major, a target minor at least the source's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

DEVMIG = os.environ.get("DEVMIG_BIN", str(Path(__file__).resolve().parents[3] / "target/debug/devmig"))
TOKEN = "nova-admin-secret-0123456789"
CATALOG = """\
# Nova's fake vGPU types, as mtty types (1 and 2 serial ports).
[[mtty.types]]
name = "nvidia-11"
ports = 1
[[mtty.types]]
name = "nvidia-12"
ports = 2
"""
PGPUS = ("0000:81:00.0", "0000:81:01.0")


def spec(host: str, driver_version: str) -> str:
    """A host with the two pGPUs of Nova's fake libvirt, its driver at ``driver_version``."""
    parts = [f'hostname = "{host}"\n']
    for address in PGPUS:
        parts.append(
            f'[[pci]]\naddress = "{address}"\nid = "10de:1eb8"\nclass = "0x030200"\n'
            f'driver = "mtty"\ndriver_version = "{driver_version}"\n'
            '[pci.mdev]\ntypes = [{ id = "nvidia-11" }, { id = "nvidia-12" }]\n'
        )
    return "".join(parts)


def _wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within 30 s: {log.read_text(errors='replace')}")
        time.sleep(0.05)


class Host:
    """One emulated host and its agent; :meth:`stop` unmounts and stops both."""

    def __init__(self, name: str, driver_version: str, *, tls: bool = False) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"devmig-nova-{name}-"))
        self.mnt = self.dir / "mnt"
        self.mnt.mkdir()
        (self.dir / "spec.toml").write_text(spec(name, driver_version))
        (self.dir / "catalog.toml").write_text(CATALOG)
        (self.dir / "tokens.toml").write_text(f'[[token]]\nname = "nova"\nscope = "admin"\nsecret = "{TOKEN}"\n')
        (self.dir / "token").write_text(TOKEN + "\n")
        os.chmod(self.dir / "tokens.toml", 0o600)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        common = [DEVMIG, "--catalog", str(self.dir / "catalog.toml")]
        mount_log = self.dir / "mount.log"
        mount = subprocess.Popen(
            [*common, "sim", "mount", str(self.mnt), "--spec", str(self.dir / "spec.toml")],
            stdout=self._log(mount_log),
            stderr=subprocess.STDOUT,
        )
        self._procs.append(mount)
        _wait_for(f"simfs of {name}", lambda: (self.mnt / "sys/class/mdev_bus").exists(), mount, mount_log)
        tls_args: list[str] = []
        self.ca_file: Path | None = None
        if tls:
            self.ca_file = pki(self.dir)
            tls_args = ["--tls-cert", str(self.dir / "server.pem"), "--tls-key", str(self.dir / "server.key")]
        agent_log = self.dir / "agent.log"
        agent = subprocess.Popen(
            [
                *common,
                "--sysfs-root",
                str(self.mnt),
                "agent",
                "--listen",
                "127.0.0.1:0",
                "--token-file",
                str(self.dir / "tokens.toml"),
                "--state-dir",
                str(self.dir / "state"),
                *tls_args,
            ],
            stdout=self._log(agent_log),
            stderr=subprocess.STDOUT,
        )
        self._procs.append(agent)
        _wait_for(f"agent of {name}", lambda: "listening on " in agent_log.read_text(errors="replace"), agent, agent_log)
        text = agent_log.read_text()
        self.url = text.split("listening on ", 1)[1].split()[0]

    def _log(self, path: Path) -> IO[bytes]:
        f = path.open("wb")
        self._logs.append(f)
        return f

    def type_dir(self, address: str, mdev_type: str) -> Path:
        """The sysfs directory of a type of a pGPU."""
        return self.mnt / f"sys/class/mdev_bus/{address}/mdev_supported_types/{mdev_type}"

    def create_mdev(self, address: str, mdev_type: str, uuid: str) -> None:
        """Creates an mdev as Nova's privsep does: one write of its UUID into ``create``."""
        (self.type_dir(address, mdev_type) / "create").write_text(uuid)

    def mdev_exists(self, uuid: str) -> bool:
        """Whether the mdev is in the tree."""
        return (self.mnt / f"sys/bus/mdev/devices/{uuid}").exists()

    def agents_entry(self) -> str:
        """This host's table of an agents file."""
        ca = f'ca_file = "{self.ca_file}"\n' if self.ca_file else ""
        return f'[agents.{self.name}]\nurl = "{self.url}"\ntoken_file = "{self.dir / "token"}"\n{ca}'

    def stop(self) -> None:
        """Stops the agent, then unmounts (the mount's SIGTERM handler unmounts)."""
        for p in reversed(self._procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["umount", "-l", str(self.mnt)], stderr=subprocess.DEVNULL, check=False)
        for f in self._logs:
            f.close()
        with open("/proc/mounts") as mounts:
            still = any(line.split()[1] == str(self.mnt) for line in mounts)
        if not still:
            shutil.rmtree(self.dir, ignore_errors=True)


def pki(directory: Path) -> Path:
    """A test CA and a server certificate for 127.0.0.1 signed by it (openssl); the CA's path."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=devmig-nova test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return directory / "ca.pem"


def agents_file(directory: Path, hosts: list[Host], extra: str = "") -> Path:
    """Writes an agents file naming ``hosts``; its path."""
    path = directory / "nova-agents.toml"
    path.write_text("".join(h.agents_entry() for h in hosts) + extra)
    return path
