#!/usr/bin/env python3
"""Writes the stub plugin archive of the bed's Perses image (a .tar.gz Perses unpacks at start
from /etc/perses/plugins-archive into its plugin path), from perses-stub-plugins.txt.

Layout, as Perses' internal/api/plugin loads it: mf-manifest.json, package.json (perses.plugins,
perses.schemasPath) and schemas/NAME/model.cue with `kind: "NAME"` and an open `spec`.

usage: perses-stubs.py LIST OUT.tar.gz
"""
import io
import json
import sys
import tarfile


def main(list_path: str, out: str) -> None:
    plugins = []
    with open(list_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, kind = line.split()
            plugins.append((name, kind))
    files = {
        "mf-manifest.json": json.dumps(
            {
                "id": "PersesOciStubs",
                "name": "PersesOciStubs",
                "metaData": {"buildInfo": {"buildVersion": "0.0.1", "buildName": "PersesOciStubs"}},
            },
            indent=2,
        ),
        "package.json": json.dumps(
            {
                "name": "perses-oci-stubs",
                "version": "0.0.1",
                "perses": {
                    "schemasPath": "schemas",
                    "plugins": [
                        {"kind": kind, "spec": {"name": name, "display": {"name": name}}}
                        for name, kind in plugins
                    ],
                },
            },
            indent=2,
        ),
    }
    for name, _ in plugins:
        files[f"schemas/{name}/model.cue"] = (
            "// Stub schema of the perses-oci test bed: accepts any spec.\n"
            f'package model\n\nkind: "{name}"\nspec: {{...}}\n'
        )
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            data = files[path].encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
