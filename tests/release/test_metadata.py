"""What users and Artifact Hub read about the chart: Chart.yaml's metadata and annotations, CHANGELOG.md
(whose newest section is the chart's version and becomes the release notes), artifacthub-repo.yml; and the
stamping script's rules for tags, changelog sections and values.yaml, with their refusals."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import helpers
from tests.release.support import RELEASE_WORKFLOW, ROOT, load_workflow, release_chart

rc = release_chart()
CHANGELOG = ROOT / "CHANGELOG.md"
REPOSITORY = "https://github.com/model-api/model-api"
ARTIFACTHUB_ANNOTATIONS = (
    "artifacthub.io/license",
    "artifacthub.io/links",
    "artifacthub.io/images",
    "artifacthub.io/changes",
    "artifacthub.io/prerelease",
)


def chart_yaml() -> dict[str, Any]:
    return yaml.safe_load((helpers.CHART_DIR / "Chart.yaml").read_text())


def annotation(name: str) -> Any:
    return yaml.safe_load(chart_yaml()["annotations"][name])


def test_chart_yaml_has_what_artifact_hub_shows() -> None:
    chart = chart_yaml()
    actual = {key: bool(chart.get(key)) for key in ("home", "sources", "maintainers", "icon", "description")}
    actual |= {f"annotations.{key}": key in chart["annotations"] for key in ARTIFACTHUB_ANNOTATIONS}
    assert actual == dict.fromkeys(actual, True), f"Chart.yaml metadata missing: {actual}"


def test_urls_point_at_this_repository_and_the_icon_exists() -> None:
    chart = chart_yaml()
    urls = [chart["home"], *chart["sources"], *(link["url"] for link in annotation("artifacthub.io/links"))]
    assert [u for u in urls if not u.startswith(REPOSITORY)] == []
    icon = re.fullmatch(
        r"https://raw\.githubusercontent\.com/model-api/model-api/main/(?P<path>.+)", chart["icon"]
    )
    assert icon and (ROOT / icon["path"]).is_file(), (
        f"Chart.yaml icon {chart['icon']} names no file of this repo"
    )
    for url in urls:
        path = re.fullmatch(rf"{REPOSITORY}/(?:tree|blob)/main/(?P<path>[^#]+)(?:#.*)?", url)
        assert path is None or (ROOT / path["path"]).exists(), (
            f"Chart.yaml link {url} names no path of this repo"
        )


def test_license_annotation_matches_the_project_license() -> None:
    project = re.search(r'^license = "(?P<spdx>[^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert project and chart_yaml()["annotations"]["artifacthub.io/license"] == project["spdx"]


def test_images_annotation_names_what_the_chart_renders_by_default() -> None:
    objects = helpers.render()
    rendered = {
        c["image"] for o in helpers.pod_owners(objects) for c in helpers.containers(helpers.pod_spec(o))
    }
    listed = {entry["image"] for entry in annotation("artifacthub.io/images")}
    assert listed == rendered


def test_images_annotation_lists_the_platforms_the_release_builds() -> None:
    build = next(
        s for s in load_workflow(RELEASE_WORKFLOW)["jobs"]["image"]["steps"] if s.get("id") == "build"
    )
    built = sorted(build["with"]["platforms"].split(","))
    assert (
        [sorted(e["platforms"]) for e in annotation("artifacthub.io/images")]
        == [built]
        == [sorted(rc.PLATFORMS)]
    )


def test_newest_changelog_section_is_the_chart_version() -> None:
    sections = [v for v, _ in rc.changelog_sections(CHANGELOG.read_text()) if v.lower() != "unreleased"]
    assert sections[0] == chart_yaml()["version"], (
        f"CHANGELOG.md's newest section [{sections[0]}] is not Chart.yaml's version "
        f"{chart_yaml()['version']}: a chart change bumps both (CHANGELOG.md, 'Versioning rules')"
    )


def test_changes_annotation_lists_the_changelog_section() -> None:
    section = rc.changelog_section(CHANGELOG.read_text(), chart_yaml()["version"])
    assert annotation("artifacthub.io/changes") == rc.artifacthub_changes(section), (
        "Chart.yaml's artifacthub.io/changes differs from CHANGELOG.md's section: paste the output of "
        "`python .github/scripts/release_chart.py changes` into Chart.yaml"
    )


def test_changes_command_prints_the_annotation_as_yaml() -> None:
    section = rc.changelog_section(CHANGELOG.read_text(), chart_yaml()["version"])
    changes = rc.artifacthub_changes(section)
    parsed = yaml.safe_load(rc.changes_block(changes))
    assert yaml.safe_load(parsed["artifacthub.io/changes"]) == changes


def test_changelog_versions_are_semver_and_descending() -> None:
    versions = [v for v, _ in rc.changelog_sections(CHANGELOG.read_text()) if v.lower() != "unreleased"]
    keys = [tuple(int(part) for part in rc.version_from_tag(v).split("-")[0].split(".")) for v in versions]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys), versions


def test_artifacthub_repo_metadata() -> None:
    data = yaml.safe_load((ROOT / "charts" / "artifacthub-repo.yml").read_text())
    assert set(data) <= {"repositoryID", "owners", "ignore"}
    assert [set(owner) <= {"name", "email"} and "email" in owner for owner in data["owners"]] == [True]
    maintainer_emails = {m.get("email") for m in chart_yaml()["maintainers"]}
    assert {owner["email"] for owner in data["owners"]} <= maintainer_emails


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("v1.2.3", "1.2.3"),
        ("1.2.3", "1.2.3"),
        ("v0.2.0-rc.1", "0.2.0-rc.1"),
        ("v1.0.0+build.5", "1.0.0+build.5"),
    ],
)
def test_version_from_tag(tag: str, version: str) -> None:
    assert rc.version_from_tag(tag) == version


@pytest.mark.parametrize("tag", ["v1.2", "v01.2.3", "latest", "v1.2.3-", "refs/tags/v1.2.3", ""])
def test_version_from_tag_refuses(tag: str) -> None:
    with pytest.raises(rc.ReleaseError, match="is not a SemVer version"):
        rc.version_from_tag(tag)


def test_prerelease_tags_are_marked_prerelease() -> None:
    assert [rc.is_prerelease(v) for v in ("1.2.3", "1.2.3-rc.1", "1.2.3+meta")] == [False, True, False]


CHANGELOG_TEXT = """# Changelog

## [Unreleased]

- not yet

## [1.1.0] - 2026-12-01

### Added

- A new value,
  explained on two lines.

### Fixed

- A bug.

## [1.0.0] - 2026-11-01

### Added

- Everything.

[1.1.0]: https://example.invalid/compare/v1.0.0...v1.1.0
"""


def test_changelog_section_and_changes() -> None:
    section = rc.changelog_section(CHANGELOG_TEXT, "1.1.0")
    assert rc.artifacthub_changes(section) == [
        {"kind": "added", "description": "A new value, explained on two lines."},
        {"kind": "fixed", "description": "A bug."},
    ]


@pytest.mark.parametrize(
    ("text", "version", "message"),
    [
        (CHANGELOG_TEXT, "1.2.0", r"newest section is \[1.1.0\], not \[1.2.0\]"),
        (CHANGELOG_TEXT, "1.0.0", r"newest section is \[1.1.0\]"),
        ("# Changelog\n", "1.0.0", "no released section"),
        ("## [1.0.0]\n\n", "1.0.0", "is empty"),
    ],
)
def test_changelog_section_refuses(text: str, version: str, message: str) -> None:
    with pytest.raises(rc.ReleaseError, match=message):
        rc.changelog_section(text, version)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("### Improved\n\n- x", "none of added"),
        ("- x", "under no ### heading"),
        ("### Added\n", "lists no change"),
    ],
)
def test_artifacthub_changes_refuses(section: str, message: str) -> None:
    with pytest.raises(rc.ReleaseError, match=message):
        rc.artifacthub_changes(section)


def test_stamp_values_refuses_a_values_file_without_the_keys() -> None:
    with pytest.raises(rc.ReleaseError, match=r"image\.digest not found"):
        rc.stamp_values("image:\n  repository: x\nother: 1\n  digest: y\n", "r", "sha256:" + "0" * 64)


@pytest.mark.parametrize(
    ("image", "digest", "message"),
    [
        ("ghcr.io/o/model-api", "sha256:abc", "is not sha256:<64 lowercase hex digits>"),
        ("ghcr.io/o/model-api:1.0.0", "sha256:" + "0" * 64, "without tag or digest"),
    ],
)
def test_package_refuses_bad_image_references(tmp_path: Path, image: str, digest: str, message: str) -> None:
    with pytest.raises(rc.ReleaseError, match=message):
        rc.package(f"v{chart_yaml()['version']}", image, digest, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_release_notes_carry_the_section_the_digests_and_how_to_verify() -> None:
    version = chart_yaml()["version"]
    digest, chart_digest = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    notes = rc.release_notes(
        f"v{version}",
        "acme/model-api",
        "ghcr.io/acme/model-api",
        digest,
        "oci://ghcr.io/acme/charts/model-api",
        chart_digest,
    )
    section = rc.changelog_section(CHANGELOG.read_text(), version)
    identity = f"https://github.com/acme/model-api/.github/workflows/release.yaml@refs/tags/v{version}"
    wanted = [
        section,
        f"cosign verify ghcr.io/acme/model-api@{digest}",
        f"cosign verify ghcr.io/acme/charts/model-api@{chart_digest}",
        f"--certificate-identity {identity}",
        f"helm install model-api oci://ghcr.io/acme/charts/model-api --version {version}",
    ]
    assert [w for w in wanted if w not in notes] == []


def test_stamp_readme_refuses_a_readme_without_the_image_rows() -> None:
    with pytest.raises(rc.ReleaseError, match=r"no parameters row for image\.repository, image\.digest"):
        rc.stamp_readme("# model-api\n", "r", "sha256:" + "0" * 64)


def test_archive_times_default_to_the_commit_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    commit_time = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert rc.source_date_epoch(ROOT) == int(commit_time)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert rc.source_date_epoch(ROOT) == 1700000000
