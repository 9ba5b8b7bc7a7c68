"""The release workflow does what CHANGELOG.md ("Releasing") promises: it runs on version tags only, builds
both architectures with an SBOM and provenance, signs the image and the chart by the digests it pushed,
packages the chart with the image job's digest, publishes the GitHub release only after both signatures,
and hands each job only the permissions it uses (the OIDC token only to the jobs that run nothing but cosign).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.release.support import RELEASE_WORKFLOW, load_workflow, release_chart, step, steps_using

WORKFLOW = load_workflow(RELEASE_WORKFLOW)
JOBS: dict[str, Any] = WORKFLOW["jobs"]
SIGN_JOBS = ("sign-image", "sign-chart")


def test_runs_on_version_tags_only() -> None:
    assert WORKFLOW["on"] == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+*"]}}


def test_permissions_per_job() -> None:
    actual = {name: job["permissions"] for name, job in JOBS.items()}
    assert actual == {
        "image": {"contents": "read", "packages": "write"},
        "sign-image": {"packages": "write", "id-token": "write"},
        "chart": {"contents": "read", "packages": "write"},
        "sign-chart": {"packages": "write", "id-token": "write"},
        "github-release": {"contents": "write"},
    }


@pytest.mark.parametrize("job", SIGN_JOBS)
def test_jobs_holding_the_oidc_token_run_nothing_but_cosign(job: str) -> None:
    steps = JOBS[job]["steps"]
    uses = [str(s["uses"]).split("@")[0] for s in steps if "uses" in s]
    runs = [s["run"] for s in steps if "run" in s]
    assert (uses, [r.split()[:3] for r in runs]) == (
        ["sigstore/cosign-installer", "docker/login-action"],
        [["cosign", "sign", "--yes"]],
    )


def test_image_is_built_for_both_architectures_with_sbom_and_provenance() -> None:
    build = step(WORKFLOW, "image", "build")
    options = build["with"]
    actual = {
        "platforms": sorted(options["platforms"].split(",")),
        "push": options["push"],
        "sbom": options["sbom"],
        "provenance": options["provenance"],
        "context": options["context"],
    }
    assert actual == {
        "platforms": sorted(release_chart().PLATFORMS),
        "push": True,
        "sbom": True,
        "provenance": "mode=max",
        "context": ".",
    }


def test_tag_is_checked_before_anything_is_built() -> None:
    steps = JOBS["image"]["steps"]
    names = next(i for i, s in enumerate(steps) if s.get("id") == "names")
    first_push = min(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("docker/"))
    assert names < first_push and "release_chart.py version --tag" in steps[names]["run"]


def test_signatures_name_the_digests_that_were_pushed() -> None:
    sign_image = next(s for s in JOBS["sign-image"]["steps"] if "run" in s)
    sign_chart = next(s for s in JOBS["sign-chart"]["steps"] if "run" in s)
    actual = {
        "image": (sign_image["env"], sign_image["run"]),
        "chart": (sign_chart["env"], sign_chart["run"]),
        "image job digest": JOBS["image"]["outputs"]["digest"],
        "chart job digest": JOBS["chart"]["outputs"]["digest"],
    }
    assert actual == {
        "image": (
            {"IMAGE": "${{ needs.image.outputs.image }}", "DIGEST": "${{ needs.image.outputs.digest }}"},
            'cosign sign --yes "${IMAGE}@${DIGEST}"',
        ),
        "chart": (
            {"REF": "${{ needs.chart.outputs.ref }}", "DIGEST": "${{ needs.chart.outputs.digest }}"},
            'cosign sign --yes "${REF#oci://}@${DIGEST}"',
        ),
        "image job digest": "${{ steps.build.outputs.digest }}",
        "chart job digest": "${{ steps.push.outputs.digest }}",
    }


def test_chart_is_packaged_with_the_pushed_image_and_pushed_to_oci() -> None:
    package = step(WORKFLOW, "chart", "package")
    push = step(WORKFLOW, "chart", "push")
    assert package["env"] == {
        "TAG": "${{ github.ref_name }}",
        "IMAGE": "${{ needs.image.outputs.image }}",
        "DIGEST": "${{ needs.image.outputs.digest }}",
    }
    assert 'helm push "$ARCHIVE" "oci://$repository"' in push["run"]
    assert 'repository="ghcr.io/${OWNER,,}/charts"' in push["run"]


def test_artifacthub_metadata_is_pushed_beside_the_chart() -> None:
    oras = next(s for s in JOBS["chart"]["steps"] if "oras push" in str(s.get("run", "")))
    wanted = [
        '"${REF#oci://}:artifacthub.io"',
        "application/vnd.cncf.artifacthub.config.v1+yaml",
        "artifacthub-repo.yml:application/vnd.cncf.artifacthub.repository-metadata.layer.v1.yaml",
    ]
    assert (oras["working-directory"], [w for w in wanted if w not in oras["run"]]) == ("charts", [])
    assert steps_using(WORKFLOW, "chart", "oras-project/setup-oras") != []


def test_release_is_created_only_after_both_signatures() -> None:
    release = JOBS["github-release"]
    assert set(release["needs"]) == {"image", "chart", *SIGN_JOBS}
    run = release["steps"][-1]["run"]
    assert "release_chart.py notes" in run and 'gh release create "$TAG" --verify-tag' in run
