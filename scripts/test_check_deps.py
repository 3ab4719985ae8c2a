"""scripts/check_deps.py on a copy of this workspace's manifests, broken
one way at a time: each break must be caught and named, and the copy as it
is must pass. Run: python3 -m unittest scripts/test_check_deps.py"""

import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECK = ROOT / "scripts" / "check_deps.py"


def copy_workspace(to):
    shutil.copy(ROOT / "Cargo.toml", to / "Cargo.toml")
    shutil.copy(ROOT / "Cargo.lock", to / "Cargo.lock")
    shutil.copytree(
        ROOT / "crates",
        to / "crates",
        ignore=shutil.ignore_patterns("target", "corpus*", "artifacts", "coverage", "regressions"),
    )


def add_dependency(root, crate_dir, line):
    manifest = root / "crates" / crate_dir / "Cargo.toml"
    text = manifest.read_text()
    text, n = re.subn(r"^\[dependencies\]\n", "[dependencies]\n" + line + "\n", text, flags=re.M)
    assert n == 1, manifest
    manifest.write_text(text)


def check(root):
    return subprocess.run(
        [sys.executable, str(CHECK), str(root)], capture_output=True, text=True
    )


class Breaks(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = pathlib.Path(self.tmp.name)
        copy_workspace(self.root)

    def tearDown(self):
        self.tmp.cleanup()

    def assert_caught(self, crate_dir, line, message):
        add_dependency(self.root, crate_dir, line)
        r = check(self.root)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(message, r.stderr)

    def test_the_workspace_as_it_is_passes(self):
        r = check(self.root)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("every dependency points down", r.stdout)

    def test_a_library_linking_a_service(self):
        self.assert_caught(
            "libs/domain",
            "reports.workspace = true",
            "domain (libs) depends on reports (services)",
        )

    def test_a_client_linking_storage(self):
        self.assert_caught(
            "libs/crm",
            "storage.workspace = true",
            "crm (an API client) depends on storage",
        )

    def test_a_client_linking_runtime(self):
        self.assert_caught(
            "libs/meta-graph",
            "runtime.workspace = true",
            "meta-graph (an API client) depends on runtime",
        )

    def test_a_service_linking_another_service(self):
        self.assert_caught(
            "services/capi-sender",
            "reports.workspace = true",
            "capi-sender (services) depends on reports (services)",
        )

    def test_the_cli_linking_a_service(self):
        self.assert_caught(
            "tools/capi",
            "reports.workspace = true",
            "capi (tools) depends on reports (services)",
        )

    def test_a_crate_outside_the_layers(self):
        shutil.move(self.root / "crates" / "libs" / "bus", self.root / "crates" / "misc-bus")
        text = (self.root / "Cargo.toml").read_text()
        text = text.replace('"crates/tests/pipeline"]', '"crates/tests/pipeline", "crates/misc-bus"]')
        text = text.replace('path = "crates/libs/bus"', 'path = "crates/misc-bus"')
        (self.root / "Cargo.toml").write_text(text)
        r = check(self.root)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("crates/misc-bus/ is not a layer", r.stderr)


if __name__ == "__main__":
    unittest.main()
