"""Nova's own vGPU live-migration functional tests, with devmig in the loop.

Run by ``integrations/nova/run-tests.sh`` against a copy of Nova 34.0.0 with
``patches/nova-34.0.0-devmig.patch`` applied (``python -m unittest``; Nova's fixtures are
testtools-based). Each test starts real devmig agents over emulated hosts (``lab.py``) whose
pGPUs mirror the fake libvirt's: an mdev Nova creates on a host is created in that host's
emulated sysfs too, and a target devmig's agent creates on the destination is registered with
the destination's fake libvirt (on a real host, libvirt sees it through udev).

- ``DevmigVGPULiveMigrationTests``: Nova's four tests pass with devmig choosing the targets,
  and the target the VM ends on is the one devmig claimed (then completed).
- ``DevmigRefusesIncompatibleTests``: a destination whose driver is older than the source's
  fails the pre-check with devmig's reason (Nova answers NoValidHost), leaving no claim.
- ``DevmigRollbackTests``: Nova's failed-migration tests; the claim is released on rollback
  and devmig's agent removes the mdev it created.
- ``DevmigFilterTests``: with the scheduler filter, an incompatible host is filtered with
  devmig's reason and the instance goes to the compatible one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import fixtures
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from nova.tests.functional.libvirt import test_vgpu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import TOKEN, Host, agents_file  # noqa: E402

from devmig_nova.client import AgentClient  # noqa: E402

PASTE = str(Path(sys.prefix) / "etc/nova/api-paste.ini")
IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"


class DevmigMixin:
    """Real devmig agents for the ``src`` and ``dest`` computes (and ``EXTRA`` hosts)."""

    VERSIONS = {"src": "0.2", "dest": "0.2"}

    def setUp(self):
        hosts = {name: Host(name, v) for name, v in self.VERSIONS.items()}
        # (Nova's test base clears the test's attributes before later cleanups run.)
        self.addCleanup(lambda: [h.stop() for h in hosts.values()])
        self.devmig = hosts
        tmp = Path(self.useFixture(fixtures.TempDir()).path)
        path = agents_file(tmp, list(self.devmig.values()))
        self.useFixture(fixtures.EnvironmentVariable("DEVMIG_NOVA_AGENTS", str(path)))
        original_claim = AgentClient.claim

        def claim_and_tell_libvirt(agent, migration_id, source_version, target, ttl):
            granted = original_claim(agent, migration_id, source_version, target, ttl)
            if isinstance(target, dict) and "type" in target and granted.get("created_mdev"):
                parent, mdev_type = target["type"].split("/")
                # The fake libvirt's side of a new mdev (what udev tells a real libvirt).
                test_vgpu.VGPUTestBase._create_mdev(
                    self, self.pci2libvirt_address(parent), mdev_type, uuid=granted["device"]
                )
            return granted

        self.useFixture(fixtures.MonkeyPatch("devmig_nova.client.AgentClient.claim", claim_and_tell_libvirt))
        super().setUp()

    def _setup_services(self):
        self.flags(api_paste_config=PASTE, group="wsgi")
        return super()._setup_services()

    def _create_mdev(self, dev_name, mdev_type, uuid=None):
        # Nova created an mdev on the current host: create it in that host's sysfs as well.
        uuid = super()._create_mdev(dev_name, mdev_type, uuid=uuid)
        self.devmig[self._current_host].create_mdev(self.libvirt2pci_address(dev_name), mdev_type, uuid)
        return uuid

    def boot_on_src(self):
        # (The migration stub of Nova's mixin looks the domain up by self.server.)
        self.server = self._create_server(image_uuid=IMAGE, flavor_id=self.flavor, networks="auto", host=self.src.host)
        return self.server

    def assert_no_valid_host(self, server):
        ex = self.assertRaises(client.OpenStackApiException, self._live_migrate, server, "completed")
        self.assertEqual(500, ex.response.status_code)
        self.assertIn("NoValidHost", str(ex))
        return self.stdlog.logger.output

    def agent(self, name):
        return AgentClient(self.devmig[name].url, TOKEN)

    def mdevs(self, name):
        return {p.name for p in (self.devmig[name].mnt / "sys/bus/mdev/devices").iterdir()}

    def assigned(self, compute, server):
        inst = objects.Instance.get_by_uuid(self.context, server["id"])
        return set(compute.driver._get_all_assigned_mediated_devices(inst))


class DevmigVGPULiveMigrationTests(DevmigMixin, test_vgpu.VGPULiveMigrationTests):
    def test_the_vm_ends_on_the_target_devmig_claimed(self):
        server = self.boot_on_src()
        (src_mdev,) = self.assigned(self.src, server)
        self.assertIn(src_mdev, self.mdevs("src"))
        self.assertEqual(set(), self.mdevs("dest"))
        self._live_migrate(server, "completed")
        (dest_mdev,) = self.assigned(self.dest, server)
        # Nova never created it on the destination: devmig's agent did, for the claim.
        self.assertEqual({dest_mdev}, self.mdevs("dest"))
        self.assertEqual([], self.agent("dest").claims(), "the claim was completed")
        self.assertIn("devmig claimed target mdevs for %s" % server["id"], self.stdlog.logger.output)
        self.assertIn("devmig: completed 1 claim(s)", self.stdlog.logger.output)


class DevmigRefusesIncompatibleTests(DevmigMixin, test_vgpu.VGPULiveMigrationTests):
    VERSIONS = {"src": "0.2", "dest": "0.1"}
    # Nova's own tests run in the class above.
    test_live_migration_fails_on_old_source = None
    test_live_migration_fails_on_old_destination = None
    test_live_migration_fails_due_to_non_supported_mdev_types = None
    test_live_migrate_server = None

    def test_an_older_destination_driver_fails_the_precheck_with_devmigs_reason(self):
        server = self.boot_on_src()
        log = self.assert_no_valid_host(server)
        self.assertIn("Unable to migrate %s: devmig: no target on this host takes source mdev" % server["id"], log)
        self.assertIn("mtty.driver_version_minor (0.2.0 -> 0.1.0)", log)
        self.assertEqual(set(), self.mdevs("dest"), "a refused claim leaves no mdev")
        self.assertEqual([], self.agent("dest").claims())


class DevmigRollbackTests(DevmigMixin, test_vgpu.VGPULiveMigrationTestsLMFailed):
    def test_a_failed_migration_releases_the_claim_and_its_mdev(self):
        self.boot_on_src()
        self._live_migrate(self.server, "failed")
        self.assertTrue(self.migrate_stub_ran)
        self.assertEqual(set(), self.mdevs("dest"), "the agent removed the mdev it created")
        self.assertEqual([], self.agent("dest").claims())
        self.assertIn("devmig: released 1 claim(s)", self.stdlog.logger.output)


class DevmigFilterTests(DevmigMixin, test_vgpu.VGPULiveMigrationTests):
    VERSIONS = {"src": "0.2", "dest": "0.1", "dest2": "0.2"}
    ADDITIONAL_FILTERS = ["DevmigLiveMigrationFilter"]
    test_live_migration_fails_on_old_source = None
    test_live_migration_fails_on_old_destination = None
    test_live_migration_fails_due_to_non_supported_mdev_types = None
    test_live_migrate_server = None

    def setUp(self):
        self.flags(
            available_filters=["nova.scheduler.filters.all_filters", "devmig_nova.filter.DevmigLiveMigrationFilter"],
            group="filter_scheduler",
        )
        super().setUp()
        pci_info = fakelibvirt.HostPCIDevicesInfo(
            num_pci=0, num_pfs=0, num_vfs=0, num_mdevcap=2, multiple_gpu_types=True
        )
        self.dest2 = self.start_compute_with_vgpu("dest2", pci_info=pci_info)
        for name, trait in (("pci_0000_81_00_0", "CUSTOM_NVIDIA_11"), ("pci_0000_81_01_0", "CUSTOM_NVIDIA_12")):
            self._set_provider_traits(self._get_provider_uuid_by_name("dest2_" + name), [trait])

    def _migrate_stub(self, domain, destination, params, flags):
        # Nova's stub moves the domain to self.dest; here the scheduler picks the host.
        host = destination.split("://", 1)[1].split("/", 1)[0]
        self.dest = self.computes[host]
        super()._migrate_stub(domain, destination, params, flags)

    def test_an_incompatible_host_is_filtered_and_the_vm_goes_to_a_compatible_one(self):
        server = self.boot_on_src()
        self._live_migrate(server, "completed")
        server = self.api.get_server(server["id"])
        self.assertEqual("dest2", server["OS-EXT-SRV-ATTR:host"])
        log = self.stdlog.logger.output
        self.assertIn("DevmigLiveMigrationFilter: dest filtered out for %s" % server["id"], log)
        self.assertIn("mtty.driver_version is 0.x with minor >= 2 (the target has 0.1.0)", log)
        self.assertNotIn("dest2 filtered out", log)
        self.assertEqual([], self.agent("dest").claims())
        self.assertEqual(set(), self.mdevs("dest"))
        self.assertEqual(1, len(self.mdevs("dest2")))

    def test_a_host_whose_agent_cannot_answer_is_filtered_never_passed(self):
        self.devmig["dest2"].stop()  # dest2 is compatible, but nobody can say so now
        server = self.boot_on_src()
        log = self.assert_no_valid_host(server)
        self.assertIn("DevmigLiveMigrationFilter: dest2 filtered out for %s" % server["id"], log)
        self.assertIn("its devices cannot be checked", log)
        self.assertIn("DevmigLiveMigrationFilter: dest filtered out for %s" % server["id"], log)

