"""Release plumbing for .github/workflows/release.yaml: the version a tag stands for, the chart packaged
with that version and the image digest the same run pushed, and the release notes.

    python .github/scripts/release_chart.py version --tag v1.2.3   # the checks, then the version
    python .github/scripts/release_chart.py changes                # Chart.yaml's artifacthub.io/changes
    python .github/scripts/release_chart.py package --tag v1.2.3 --image ghcr.io/OWNER/model-api \
        --digest sha256:<64 hex> --out dist
    python .github/scripts/release_chart.py notes --tag v1.2.3 --image ... --digest ... \
        --chart-ref oci://ghcr.io/OWNER/charts/model-api --chart-digest sha256:<64 hex>

It lives beside the only workflow that calls it rather than in `loadtest/` (the users' toolkit): it is
release machinery, and the release job runs `version` and `notes` on the runner's own python3 before any
dependency is installed, so those two use the standard library only. `package` needs PyYAML and
helm-python-sdk (pinned in service/constraints.txt): Helm's own Go packaging code, the engine the test
suite renders with, so tests/release/ checks byte for byte what the workflow publishes.

`package` never touches the source tree. It copies the chart, stamps the copy (Chart.yaml version and
appVersion from the tag, the image repository and digest as the default values and in the README's
parameters table, the Artifact Hub image and changes annotations), gives every file the same
modification time (SOURCE_DATE_EPOCH, else the commit's time) so the archive is reproducible, and
packages it honouring .helmignore.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "model-api"
CHANGELOG = ROOT / "CHANGELOG.md"
PLATFORMS = ("linux/amd64", "linux/arm64")  # what the workflow's build-push step builds

# SemVer 2.0.0 (semver.org's recommended expression), after an optional leading "v".
SEMVER = re.compile(
    r"^v?(?P<version>(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?)$"
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Keep a Changelog section headings → Artifact Hub change kinds (artifacthub.io/changes).
CHANGE_KINDS = {
    "added": "added",
    "changed": "changed",
    "deprecated": "deprecated",
    "removed": "removed",
    "fixed": "fixed",
    "security": "security",
}
VERSION_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\]")


class ReleaseError(Exception):
    """A release input that cannot be published; the message names the input to fix."""


def version_from_tag(tag: str) -> str:
    """`v1.2.3` → `1.2.3` (SemVer 2.0.0; a leading `v` is dropped). Anything else is refused."""
    match = SEMVER.match(tag.strip())
    if not match:
        raise ReleaseError(f"tag {tag!r} is not a SemVer version such as v1.2.3 or v1.2.3-rc.1")
    return match["version"]


def is_prerelease(version: str) -> bool:
    match = SEMVER.match(version)
    return bool(match and match["prerelease"])


def changelog_sections(text: str) -> list[tuple[str, str]]:
    """(version, body) for every `## [version]` section, newest (first) first; `[Unreleased]` included."""
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        heading = VERSION_HEADING.match(line)
        if heading:
            sections.append((heading["version"], []))
        elif line.startswith("[") and "]: " in line:
            continue  # link reference definitions at the end of the file
        elif sections:
            sections[-1][1].append(line)
    return [(version, "\n".join(body).strip()) for version, body in sections]


def changelog_section(text: str, version: str) -> str:
    """The body of the newest released section, which must be `version` (the release uses it)."""
    released = [(v, body) for v, body in changelog_sections(text) if v.lower() != "unreleased"]
    if not released:
        raise ReleaseError("CHANGELOG.md: no released section (## [x.y.z] - date)")
    newest, body = released[0]
    if newest != version:
        raise ReleaseError(
            f"CHANGELOG.md: the newest section is [{newest}], not [{version}]: add the section for "
            f"{version} (the release notes and artifacthub.io/changes come from it)"
        )
    if not body:
        raise ReleaseError(f"CHANGELOG.md: the section [{version}] is empty")
    return body


def artifacthub_changes(section: str) -> list[dict[str, str]]:
    """Artifact Hub's `artifacthub.io/changes` entries from a Keep a Changelog section: each bullet under
    `### Added`, `### Fixed`, … becomes {kind, description} (continuation lines joined)."""
    changes: list[dict[str, str]] = []
    kind: str | None = None
    for line in section.splitlines():
        if line.startswith("### "):
            name = line[4:].strip().lower()
            if name not in CHANGE_KINDS:
                raise ReleaseError(f"CHANGELOG.md: heading {line!r} is none of {', '.join(CHANGE_KINDS)}")
            kind = CHANGE_KINDS[name]
        elif line.startswith("- "):
            if kind is None:
                raise ReleaseError(f"CHANGELOG.md: bullet {line!r} is under no ### heading")
            changes.append({"kind": kind, "description": line[2:].strip()})
        elif line.strip() and changes and line.startswith("  "):
            changes[-1]["description"] += " " + line.strip()
    if not changes:
        raise ReleaseError("CHANGELOG.md: the section lists no change")
    return changes


def changes_block(changes: list[dict[str, str]]) -> str:
    """Chart.yaml's `artifacthub.io/changes: |` annotation for `changes`, ready to paste (JSON strings are
    YAML strings, so no YAML library is needed)."""
    lines = ["  artifacthub.io/changes: |"]
    for change in changes:
        lines += [f"    - kind: {change['kind']}", f"      description: {json.dumps(change['description'])}"]
    return "\n".join(lines) + "\n"


def rendered_image(image: str, digest: str) -> str:
    """What the chart renders for `image.repository` + `image.digest` (the model-api.image helper)."""
    return f"{image}@{digest}"


def chart_version(chart_dir: Path) -> str:
    """Chart.yaml's top-level `version`, read without a YAML library (the `version` command runs first,
    on the runner's bare python3)."""
    for line in (chart_dir / "Chart.yaml").read_text().splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].split("#", 1)[0].strip().strip("\"'")
    raise ReleaseError(f"{chart_dir / 'Chart.yaml'}: no top-level version")


def releasable_version(tag: str, *, chart_dir: Path = CHART_DIR, changelog: Path = CHANGELOG) -> str:
    """The version `tag` releases, after the checks that stop a release before anything is published: a
    SemVer tag, equal to Chart.yaml's version, with its CHANGELOG.md section written."""
    version = version_from_tag(tag)
    if "+" in version:
        raise ReleaseError(f"tag {tag} carries build metadata (+...): image tags cannot hold '+'")
    in_chart = chart_version(chart_dir)
    if in_chart != version:
        raise ReleaseError(
            f"tag {tag} is not Chart.yaml's version {in_chart}: bump Chart.yaml (and CHANGELOG.md) to "
            f"{version} on the default branch first, then tag that commit"
        )
    artifacthub_changes(changelog_section(changelog.read_text(), version))
    return version


def stamp_values(text: str, image: str, digest: str) -> str:
    """values.yaml with `image.repository` and `image.digest` replaced, every other byte (the @param
    comments the README table is generated from) kept. Helm packages values.yaml as it is written."""
    lines = text.splitlines(keepends=True)
    try:
        start = lines.index("image:\n")
    except ValueError as error:
        raise ReleaseError("values.yaml: no top-level `image:` block") from error
    wanted = {"repository": f"{image}\n", "digest": f'"{digest}"\n'}
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if line.strip() and not line.startswith((" ", "#")):
            break  # the next top-level key
        for key in list(wanted):
            if line.startswith(f"  {key}:"):
                lines[index] = f"  {key}: {wanted.pop(key)}"
    if wanted:
        raise ReleaseError(f"values.yaml: image.{', image.'.join(wanted)} not found under `image:`")
    return "".join(lines)


def stamp_readme(text: str, image: str, digest: str) -> str:
    """The README's generated parameters table with the defaults `stamp_values` changed (rows of
    `image.repository` and `image.digest`; JSON in a code span, as tests/chart/values_doc.py writes them)."""
    defaults = {"image.repository": image, "image.digest": digest}
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        for key, value in defaults.items():
            if line.startswith(f"| `{key}` |"):
                head = line.rstrip("\n").rstrip().removesuffix("|").rstrip().rsplit("|", 1)[0]
                lines[index] = f"{head}| `{json.dumps(value)}` |\n"
    missing = [key for key in defaults if not any(line.startswith(f"| `{key}` |") for line in lines)]
    if missing:
        raise ReleaseError(f"README.md: no parameters row for {', '.join(missing)}")
    return "".join(lines)


def stamp_chart_metadata(
    chart: dict[str, Any], version: str, image: str, digest: str, changes: list[dict[str, str]]
) -> dict[str, Any]:
    """Chart.yaml's metadata for the release: version and appVersion from the tag, the published image
    (as the chart renders it) and this version's changes for Artifact Hub."""
    import yaml

    annotations = dict(chart.get("annotations") or {})
    annotations["artifacthub.io/images"] = yaml.safe_dump(
        [{"name": chart["name"], "image": rendered_image(image, digest), "platforms": list(PLATFORMS)}],
        sort_keys=False,
    )
    annotations["artifacthub.io/changes"] = yaml.safe_dump(changes, sort_keys=False, width=1000)
    annotations["artifacthub.io/prerelease"] = "true" if is_prerelease(version) else "false"
    return {**chart, "version": version, "appVersion": version, "annotations": annotations}


def source_date_epoch(repo: Path) -> int:
    """SOURCE_DATE_EPOCH when set, else the time of the commit checked out (git log -1 %ct)."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise ReleaseError("no SOURCE_DATE_EPOCH and no git commit to take the archive's file times from")
    return int(done.stdout.strip())


def normalize_tree(root: Path, epoch: int) -> None:
    """Same mode and modification time for every file and directory: Helm writes both into the archive."""
    for path in sorted(root.rglob("*"), reverse=True):
        path.chmod(0o755 if path.is_dir() else 0o644)
        os.utime(path, (epoch, epoch))
    os.utime(root, (epoch, epoch))


def package(
    tag: str,
    image: str,
    digest: str,
    out: Path,
    *,
    chart_dir: Path = CHART_DIR,
    changelog: Path = CHANGELOG,
    epoch: int | None = None,
) -> Path:
    """Stamp a copy of the chart for `tag` and the pushed image, package it into `out`; the archive path."""
    import helm_python
    import yaml

    version = releasable_version(tag, chart_dir=chart_dir, changelog=changelog)
    if not DIGEST.match(digest):
        raise ReleaseError(f"image digest {digest!r} is not sha256:<64 lowercase hex digits>")
    if "@" in image or ":" in image.rsplit("/", 1)[-1]:
        raise ReleaseError(f"image {image!r} must be a repository without tag or digest")
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    changes = artifacthub_changes(changelog_section(changelog.read_text(), version))
    epoch = source_date_epoch(chart_dir) if epoch is None else epoch

    with tempfile.TemporaryDirectory(prefix="model-api-release-") as work:
        stamped = Path(work) / chart["name"]
        shutil.copytree(chart_dir, stamped, symlinks=False)
        metadata = stamp_chart_metadata(chart, version, image, digest, changes)
        (stamped / "Chart.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False, width=1000))
        values_path = stamped / "values.yaml"
        values_path.write_text(stamp_values(values_path.read_text(), image, digest))
        readme_path = stamped / "README.md"
        readme_path.write_text(stamp_readme(readme_path.read_text(), image, digest))
        normalize_tree(stamped, epoch)
        out.mkdir(parents=True, exist_ok=True)
        return Path(helm_python.package(str(stamped), destination=str(out.resolve())))


def release_notes(
    tag: str,
    repository: str,
    image: str,
    digest: str,
    chart_ref: str,
    chart_digest: str,
    *,
    changelog: Path = CHANGELOG,
) -> str:
    """The GitHub release body: this version's CHANGELOG section, then what was published and how to
    verify and install it."""
    version = version_from_tag(tag)
    section = changelog_section(changelog.read_text(), version)
    chart_repo = chart_ref.removeprefix("oci://")
    identity = f"https://github.com/{repository}/.github/workflows/release.yaml@refs/tags/{tag}"
    return f"""{section}

## Published artifacts

| artifact | reference |
| --- | --- |
| image ({", ".join(PLATFORMS)}) | `{image}:{version}` = `{rendered_image(image, digest)}` |
| Helm chart | `{chart_ref}` version `{version}` = `{chart_repo}@{chart_digest}` |

The chart's default values pin the image by this digest. Both are signed keylessly with cosign (GitHub
OIDC); the image carries an SBOM and SLSA build provenance as attestations.

```console
cosign verify {rendered_image(image, digest)} \\
  --certificate-oidc-issuer https://token.actions.githubusercontent.com \\
  --certificate-identity {identity}
cosign verify {chart_repo}@{chart_digest} \\
  --certificate-oidc-issuer https://token.actions.githubusercontent.com \\
  --certificate-identity {identity}
helm install model-api {chart_ref} --version {version}
```
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    version_cmd = commands.add_parser("version", help="print the chart/app version a tag stands for")
    version_cmd.add_argument("--tag", required=True)
    version_cmd.add_argument("--chart", type=Path, default=CHART_DIR, help="the chart directory")
    version_cmd.add_argument("--changelog", type=Path, default=CHANGELOG)
    changes_cmd = commands.add_parser(
        "changes",
        help="print artifacthub.io/changes for Chart.yaml from the chart version's CHANGELOG section",
    )
    changes_cmd.add_argument("--chart", type=Path, default=CHART_DIR, help="the chart directory")
    changes_cmd.add_argument("--changelog", type=Path, default=CHANGELOG)
    package_cmd = commands.add_parser("package", help="stamp and package the chart; print the archive path")
    notes_cmd = commands.add_parser("notes", help="print the GitHub release notes")
    for sub in (package_cmd, notes_cmd):
        sub.add_argument("--tag", required=True, help="the release tag, e.g. v1.2.3")
        sub.add_argument("--image", required=True, help="the pushed image repository (no tag)")
        sub.add_argument("--digest", required=True, help="the pushed image's manifest digest (sha256:...)")
        sub.add_argument("--changelog", type=Path, default=CHANGELOG)
    package_cmd.add_argument("--chart", type=Path, default=CHART_DIR, help="the chart directory")
    package_cmd.add_argument("--out", type=Path, required=True, help="directory for the .tgz")
    notes_cmd.add_argument("--repository", required=True, help="owner/name on GitHub (GITHUB_REPOSITORY)")
    notes_cmd.add_argument("--chart-ref", required=True, help="oci://<registry>/<path>/<chart name>")
    notes_cmd.add_argument("--chart-digest", required=True, help="the pushed chart's digest (sha256:...)")
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            print(releasable_version(args.tag, chart_dir=args.chart, changelog=args.changelog))
        elif args.command == "changes":
            version = chart_version(args.chart)
            changes = artifacthub_changes(changelog_section(args.changelog.read_text(), version))
            print(changes_block(changes), end="")
        elif args.command == "package":
            archive = package(
                args.tag, args.image, args.digest, args.out, chart_dir=args.chart, changelog=args.changelog
            )
            print(archive)
        else:
            notes = release_notes(
                args.tag,
                args.repository,
                args.image,
                args.digest,
                args.chart_ref,
                args.chart_digest,
                changelog=args.changelog,
            )
            print(notes, end="")
    except ReleaseError as error:
        print(f"release_chart.py {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
