"""The dependency rule of docs/architecture.md, checked on `cargo metadata`.

Every workspace crate sits in one folder under crates/, and the folder is
its layer:

    services/  the five binaries, one pipeline stage each (they talk over
               RabbitMQ, never by linking each other)
    libs/      what the services share
    tools/     the operator's CLI and the sandbox
    tests/     the tests that run the services together

What a crate links (normal and build dependencies) may only point down:
a library links no service, tool or test crate; a service links no other
service, no tool and no test crate; a tool links no service and no test
crate. The API clients (crm, meta-graph, llm) know nothing of how we store
or run: they link neither `storage` nor `runtime` (pacing and token storage
are adapters on the storage side). Dev-dependencies are free: a crate's
own tests may start the whole pipeline.

Usage: python3 scripts/check_deps.py [WORKSPACE_ROOT]   (exit 1 on a violation)
"""

import json
import pathlib
import subprocess
import sys

LAYERS = ("services", "libs", "tools", "tests")
# What each layer may link, besides libraries.
MAY_LINK = {
    "libs": {"libs"},
    "services": {"libs"},
    "tools": {"libs", "tools"},
    "tests": {"libs", "services", "tools", "tests"},
}
CLIENTS = {"crm", "meta-graph", "llm"}
NOT_FOR_CLIENTS = {"storage", "runtime"}


def metadata(root):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def layer_of(path, crates):
    """The layer of the crate whose folder (or manifest) is `path`."""
    rel = pathlib.Path(path).resolve().relative_to(crates)
    return rel.parts[0]


def violations(meta, root):
    crates = (pathlib.Path(root) / "crates").resolve()
    found = []
    for p in meta["packages"]:
        manifest = pathlib.Path(p["manifest_path"]).parent
        try:
            layer = layer_of(manifest, crates)
        except ValueError:
            found.append(f"{p['name']}: not under crates/")
            continue
        if layer not in LAYERS:
            found.append(f"{p['name']}: crates/{layer}/ is not a layer ({', '.join(LAYERS)})")
            continue
        for d in p["dependencies"]:
            if d.get("kind") == "dev" or not d.get("path"):
                continue
            dep_layer = layer_of(d["path"], crates)
            if dep_layer not in MAY_LINK[layer]:
                found.append(
                    f"{p['name']} ({layer}) depends on {d['name']} ({dep_layer}): "
                    f"a {layer[:-1] if layer != 'libs' else 'library'} crate may link only "
                    f"{' and '.join(sorted(MAY_LINK[layer]))}"
                )
            if p["name"] in CLIENTS and d["name"] in NOT_FOR_CLIENTS:
                found.append(
                    f"{p['name']} (an API client) depends on {d['name']}: clients know nothing "
                    "of storage or runtime (put the adapter on the storage side)"
                )
    return found


def main(argv):
    root = pathlib.Path(argv[1] if len(argv) > 1 else pathlib.Path(__file__).parent.parent)
    found = violations(metadata(root), root)
    for v in found:
        print(f"check-deps: {v}", file=sys.stderr)
    if found:
        return 1
    print("check-deps: every dependency points down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
