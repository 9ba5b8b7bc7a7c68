"""Re-vendor the published CRD schemas the chart's custom resources are validated against.

Each entry names the upstream repository, the release tag and the CRD file; the script downloads that file
from raw.githubusercontent.com (or reads it from `--from DIR/<owner>+<name>` git mirrors), keeps the
`openAPIV3Schema` of the one version the chart renders, drops the `description` texts (the schemas are
for validation, and the descriptions are 80 % of the bytes) and writes `<group>_<kind>_<version>.json`
next to this file with its provenance in `x-vendored`. Nothing else is changed: the strict conversion
(unknown fields refused, as `kubectl apply`'s server-side field validation does) happens at load time in
`tests/chart/crd_schemas.py`.

    python -m tests.chart.crds.vendor            # download the pinned tags
"""

from __future__ import annotations

import argparse
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent

# (repo, tag, path of the CRD file, version the chart renders)
SOURCES: tuple[tuple[str, str, str, str], ...] = (
    (
        "prometheus-operator/prometheus-operator",
        "v0.93.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "v1",
    ),
    (
        "kubernetes-sigs/gateway-api",
        "v1.6.1",
        "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",
        "v1",
    ),
    ("argoproj/argo-rollouts", "v1.9.1", "manifests/crds/rollout-crd.yaml", "v1alpha1"),
    ("argoproj/argo-rollouts", "v1.9.1", "manifests/crds/analysis-template-crd.yaml", "v1alpha1"),
    ("kedacore/keda", "v2.20.2", "config/crd/bases/keda.sh_scaledobjects.yaml", "v1alpha1"),
)


def strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(item) for item in node]
    return node


def crd_text(repo: str, tag: str, path: str, mirrors: Path | None) -> str:
    if mirrors is not None:
        git_dir = mirrors / repo.replace("/", "+") / "repo"
        return subprocess.run(
            ["git", "-C", str(git_dir), "show", f"{tag}:{path}"], check=True, capture_output=True, text=True
        ).stdout
    url = f"https://raw.githubusercontent.com/{repo}/{tag}/{path}"
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode()


def vendor(repo: str, tag: str, path: str, version: str, mirrors: Path | None) -> Path:
    crd = yaml.safe_load(crd_text(repo, tag, path, mirrors))
    spec = crd["spec"]
    served = next(v for v in spec["versions"] if v["name"] == version)
    if not served.get("served"):
        raise SystemExit(f"{repo}@{tag} {path}: version {version} is not served")
    document = {
        "x-vendored": {
            "repository": f"https://github.com/{repo}",
            "tag": tag,
            "path": path,
            "crd": crd["metadata"]["name"],
            "apiVersion": f"{spec['group']}/{version}",
            "kind": spec["names"]["kind"],
            "note": "openAPIV3Schema of this version, description fields removed; nothing else changed",
        },
        "schema": strip_descriptions(served["schema"]["openAPIV3Schema"]),
    }
    out = HERE / f"{spec['group']}_{spec['names']['kind'].lower()}_{version}.json"
    out.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--from", dest="mirrors", type=Path, help="directory of <owner>+<name>/repo git mirrors"
    )
    args = parser.parse_args()
    for source in SOURCES:
        print(vendor(*source, args.mirrors))


if __name__ == "__main__":
    main()
