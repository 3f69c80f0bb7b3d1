"""devmig's ``[pci] device_spec`` lines for VFs on the kernel's VFIO variant drivers, read by
Nova 34.0.0's own parser (``nova.pci.devspec``) and its Placement translator: each line matches
its VF, and ``live_migratable`` becomes the trait Nova's live migration of such VFs needs."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nova.compute import pci_placement_translator as translator
from nova.pci import devspec

from lab import DEVMIG

# The VFs of devmig's NIC example host: (address, PF, vendor, product).
VFS = {
    "0000:17:00.1": ("0000:17:00.0", "15b3", "101e"),
    "0000:17:00.2": ("0000:17:00.0", "15b3", "101e"),
    "0000:21:00.1": ("0000:21:00.0", "1af4", "1041"),
    "0000:6b:00.1": ("0000:6b:00.0", "8086", "4941"),
    "0000:6b:00.2": ("0000:6b:00.0", "8086", "4941"),
}


@pytest.fixture
def nic_host() -> Iterator[Path]:
    """``devmig sim spec nic`` mounted (FUSE, as root), unmounted afterwards."""
    with tempfile.TemporaryDirectory(prefix="devmig-nova-nic-") as work:
        spec = Path(work) / "nic.toml"
        spec.write_bytes(subprocess.run([DEVMIG, "sim", "spec", "nic"], check=True, capture_output=True).stdout)
        mnt = Path(work) / "mnt"
        mnt.mkdir()
        proc = subprocess.Popen([DEVMIG, "sim", "mount", "--spec", str(spec), str(mnt)], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not (mnt / "sys/bus/pci").exists():
                assert proc.poll() is None, "devmig sim mount exited"
                assert time.monotonic() < deadline, "the mount did not appear within 30 s"
                time.sleep(0.05)
            yield mnt
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def device_spec_lines(root: Path) -> list[dict[str, str]]:
    out = subprocess.run(
        [DEVMIG, "--sysfs-root", str(root), "placement", "device-spec"], check=True, capture_output=True, text=True
    ).stdout
    prefix = "device_spec = "
    return [json.loads(line[len(prefix) :]) for line in out.splitlines() if line.startswith(prefix)]


def test_novas_parser_takes_every_line_and_tags_the_vfs_live_migratable(nic_host: Path) -> None:
    lines = device_spec_lines(nic_host)
    assert sorted(e["address"] for e in lines) == sorted(VFS)
    for entry in lines:
        pf, vendor, product = VFS[entry["address"]]
        spec = devspec.PciDeviceSpec(dict(entry))
        vf = {"vendor_id": vendor, "product_id": product, "address": entry["address"], "parent_addr": pf}
        assert spec.match(vf), entry
        other = dict(vf, address="0000:99:00.1")
        assert not spec.match(other), "a line names its own VF only"
        assert spec.tags["live_migratable"] == "true"
        traits = translator._get_traits_for_dev(spec.tags)
        assert "HW_PCI_LIVE_MIGRATABLE" in traits
        devmig = {t for t in traits if t.startswith("CUSTOM_DEVMIG_")}
        assert devmig == set(entry["traits"].split(",")), "Nova keeps devmig's trait names as they are"
