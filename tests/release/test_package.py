"""The chart as `helm package` ships it (Helm's own packaging code, through helm-python-sdk), and the release
archive exactly as the workflow's packaging step makes it (its `run:` script, executed here).

- the archive holds every template, the values and their schema, the README — and nothing else: .helmignore
  keeps chart-testing inputs and editor debris out;
- the packaged chart renders the same objects as the source tree for every values set;
- the release archive: version and appVersion from the tag, the pushed image's digest as the default
  `image.digest`, the Artifact Hub annotations naming what the chart renders, `helm lint --strict` clean,
  the same objects as the source tree given that image, and the same bytes every time (reproducible).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from loadtest.chart.release import merge_values
from tests.chart import helpers, values_doc
from tests.release.support import RELEASE_WORKFLOW, ROOT, load_workflow, release_chart, run_step

CHART = helpers.CHART_DIR
CHART_NAME = "model-api"
IMAGE = "ghcr.io/example-owner/model-api"
DIGEST = "sha256:" + hashlib.sha256(b"model-api release test image").hexdigest()
EPOCH = "1764374400"  # 2025-11-29T00:00:00Z: a fixed SOURCE_DATE_EPOCH for the byte-for-byte comparison
# Labels whose value is the chart's version or appVersion: the release changes them on purpose.
VERSION_LABELS = ("helm.sh/chart", "app.kubernetes.io/version")


def chart_version() -> str:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]


def expected_members(chart_dir: Path) -> set[str]:
    """What a packaged chart must hold, listed independently of .helmignore: the chart's metadata, values,
    schema and README, and every file under templates/."""
    fixed = {"Chart.yaml", "values.yaml", "values.schema.json", "README.md", ".helmignore"}
    templates = {
        p.relative_to(chart_dir).as_posix() for p in (chart_dir / "templates").rglob("*") if p.is_file()
    }
    return {f"{CHART_NAME}/{name}" for name in fixed | templates}


def members(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


def expand(archive: Path, into: Path) -> Path:
    helm_python.expand(str(into), str(archive))
    return into / CHART_NAME


def without_version_labels(node: Any) -> Any:
    """`node` with the values of the version labels replaced by a marker (wherever labels appear)."""
    if isinstance(node, dict):
        return {k: "<version>" if k in VERSION_LABELS else without_version_labels(v) for k, v in node.items()}
    if isinstance(node, list):
        return [without_version_labels(item) for item in node]
    return node


def version_labels(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in VERSION_LABELS:
                    found.add((key, value))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(objects)
    return found


@pytest.fixture(scope="module")
def source_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source tree packaged as `helm package charts/model-api` does."""
    out = tmp_path_factory.mktemp("package")
    return Path(helm_python.package(str(CHART), destination=str(out)))


@pytest.fixture(scope="module")
def source_package_dir(source_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return expand(source_package, tmp_path_factory.mktemp("expanded"))


@pytest.fixture(scope="module")
def release_step() -> dict[str, Any]:
    return next(
        s for s in load_workflow(RELEASE_WORKFLOW)["jobs"]["chart"]["steps"] if s.get("id") == "package"
    )


def run_release_step(
    step: Mapping[str, Any], tmp: Path, tag: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """The workflow's packaging step, with the values the workflow gives its env (the tag, and the image job's
    outputs); SOURCE_DATE_EPOCH fixed so two runs can be compared byte for byte."""
    env_names = set(step["env"])
    assert env_names == {"TAG", "IMAGE", "DIGEST"}, f"release.yaml package step env changed: {env_names}"
    return run_step(
        step["run"], {"TAG": tag, "IMAGE": IMAGE, "DIGEST": DIGEST, "SOURCE_DATE_EPOCH": EPOCH}, tmp
    )


@pytest.fixture(scope="module")
def release_archive(release_step: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    done, outputs = run_release_step(release_step, tmp_path_factory.mktemp("release"), f"v{chart_version()}")
    assert done.returncode == 0, f"release.yaml chart/package step failed:\n{done.stdout}{done.stderr}"
    return Path(outputs["archive"])


@pytest.fixture(scope="module")
def release_dir(release_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return expand(release_archive, tmp_path_factory.mktemp("release-expanded"))


def test_package_holds_every_template_the_schema_and_the_readme_and_nothing_else(
    source_package: Path,
) -> None:
    assert sorted(members(source_package)) == sorted(expected_members(CHART))


def test_helmignore_keeps_chart_testing_inputs_and_debris_out(tmp_path: Path) -> None:
    """Stray files planted in a copy of the chart: the ignored ones stay out, and one that .helmignore does
    not cover shows up in the archive (so the test above would name it)."""
    chart = tmp_path / CHART_NAME
    shutil.copytree(CHART, chart)
    ignored = [
        "ci/extra-values.yaml",
        "templates/service.yaml~",
        "values.yaml.orig",
        ".DS_Store",
        ".vscode/x",
    ]
    for name in [*ignored, "notes.txt"]:
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text("stray\n")
    archive = Path(helm_python.package(str(chart), destination=str(tmp_path / "out")))
    extra = members(archive) - expected_members(chart)
    assert sorted(extra) == [f"{CHART_NAME}/notes.txt"]
    assert {"ci/", "lintconf.yaml", "chart_schema.yaml"} & {
        m.split("/", 1)[1] for m in members(archive)
    } == set()


@pytest.mark.parametrize("value_set", list(helpers.VALUE_SETS), ids=str)
def test_packaged_chart_renders_what_the_source_tree_renders(
    value_set: str, source_package_dir: Path
) -> None:
    expected = helpers.render_set(value_set)
    actual = helpers.render_uncached(files=helpers.VALUE_SETS[value_set], chart_dir=source_package_dir)
    assert [obj for _, obj in actual] == expected


def test_release_archive_is_what_the_release_publishes(release_archive: Path, release_dir: Path) -> None:
    version = chart_version()
    chart = yaml.safe_load((release_dir / "Chart.yaml").read_text())
    values = yaml.safe_load((release_dir / "values.yaml").read_text())
    images = yaml.safe_load(chart["annotations"]["artifacthub.io/images"])
    source_values = yaml.safe_load((CHART / "values.yaml").read_text())
    changelog = release_chart().changelog_section((ROOT / "CHANGELOG.md").read_text(), version)
    actual = {
        "archive": release_archive.name,
        "version": chart["version"],
        "appVersion": chart["appVersion"],
        "image": values["image"],
        "artifacthub images": images,
        "artifacthub changes": yaml.safe_load(chart["annotations"]["artifacthub.io/changes"]),
        "members": members(release_archive),
    }
    assert actual == {
        "archive": f"{CHART_NAME}-{version}.tgz",
        "version": version,
        "appVersion": version,
        "image": {**source_values["image"], "repository": IMAGE, "digest": DIGEST},
        "artifacthub images": [
            {"name": CHART_NAME, "image": f"{IMAGE}@{DIGEST}", "platforms": ["linux/amd64", "linux/arm64"]}
        ],
        "artifacthub changes": release_chart().artifacthub_changes(changelog),
        "members": expected_members(CHART),
    }


def test_release_values_differ_from_the_source_only_in_the_image(release_dir: Path) -> None:
    """values.yaml is shipped as written: its @param comments (the README table) survive the stamping."""
    source = (CHART / "values.yaml").read_text().splitlines()
    stamped = (release_dir / "values.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(source, stamped, strict=True) if a != b]
    assert [b.strip() for _, b in changed] == [f"repository: {IMAGE}", f'digest: "{DIGEST}"']


def test_release_readme_table_is_generated_from_the_release_values(release_dir: Path) -> None:
    """The packaged README's parameters table is what tests/chart/values_doc.py generates from the
    packaged values.yaml (so it shows the pinned digest), and only those rows differ from the source."""
    readme = (release_dir / "README.md").read_text()
    generated = values_doc.replace_block(
        readme, values_doc.render_table((release_dir / "values.yaml").read_text())
    )
    changed = [
        b
        for a, b in zip((CHART / "README.md").read_text().splitlines(), readme.splitlines(), strict=True)
        if a != b
    ]
    assert (readme == generated, [row.split("|")[1].strip() for row in changed]) == (
        True,
        ["`image.repository`", "`image.digest`"],
    )


def test_release_chart_renders_the_published_image_by_digest(release_dir: Path) -> None:
    objects = [obj for _, obj in helpers.render_uncached(chart_dir=release_dir)]
    images = {
        c["image"]
        for owner in helpers.pod_owners(objects)
        for c in helpers.containers(helpers.pod_spec(owner))
    }
    annotation = yaml.safe_load(
        yaml.safe_load((release_dir / "Chart.yaml").read_text())["annotations"]["artifacthub.io/images"]
    )
    assert images == {entry["image"] for entry in annotation} == {f"{IMAGE}@{DIGEST}"}


@pytest.mark.parametrize("value_set", list(helpers.VALUE_SETS), ids=str)
def test_release_chart_renders_the_source_objects_for_that_image(value_set: str, release_dir: Path) -> None:
    """Per values set: the source tree given the published image as its default renders the same objects
    as the release archive, but for the version labels, which carry the tag's version."""
    files = helpers.VALUE_SETS[value_set]
    user_values = merge_values({"image": {"repository": IMAGE, "digest": DIGEST}}, helpers.values_for(files))
    expected = [obj for _, obj in helpers.render_uncached(user_values)]
    actual = [obj for _, obj in helpers.render_uncached(files=files, chart_dir=release_dir)]
    version = chart_version()
    assert without_version_labels(actual) == without_version_labels(expected)
    assert version_labels(actual) == {
        ("helm.sh/chart", f"{CHART_NAME}-{version}"),
        ("app.kubernetes.io/version", version),
    }


def test_release_chart_passes_helm_lint_strict(release_dir: Path) -> None:
    report = helm_python.lint(str(release_dir), strict=True)
    findings = [
        f"[{m['severity']}] {m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2
    ]
    assert (findings, report.get("errors") or []) == ([], [])


def test_release_archive_is_reproducible(
    release_step: dict[str, Any], release_archive: Path, tmp_path: Path
) -> None:
    done, outputs = run_release_step(release_step, tmp_path, f"v{chart_version()}")
    assert done.returncode == 0, done.stderr
    again = Path(outputs["archive"])
    assert helm_python.digest(str(again)) == helm_python.digest(str(release_archive))


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("v99.0.0", "is not Chart.yaml's version"),
        ("release-1", "is not a SemVer version"),
        ("v1.2", "is not a SemVer version"),
        ("v{version}+build.1", "carries build metadata"),
    ],
)
def test_release_step_refuses_a_tag_it_cannot_publish(
    release_step: dict[str, Any], tmp_path: Path, tag: str, message: str
) -> None:
    done, outputs = run_release_step(release_step, tmp_path, tag.format(version=chart_version()))
    assert (done.returncode != 0, message in done.stderr, outputs.get("archive")) == (True, True, None), (
        done.stderr
    )
