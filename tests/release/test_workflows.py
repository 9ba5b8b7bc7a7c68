"""Every GitHub workflow passes zizmor's audit offline and the GitHub workflow schema, and keeps the rules
zizmor enforces in a form a reviewer can read: actions pinned to a verified commit with its tag as a comment,
checkouts without persisted credentials, permissions per job, no template expansion inside `run:`.

The ci.yaml jobs this repository's other rules depend on are checked here too: the mutation check runs weekly
and whenever charts/ changes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.release.support import CI_WORKFLOW, ROOT, load_workflow, workflow_files

# The commits the tags named, read from the tag refs of each action's repository (git rev-parse
# <tag>^{commit}) on 2026-11-29. A new pin goes here with the tag it came from, after the same check.
VERIFIED_PINS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "azure/setup-helm": ("9bc31f4ebc9c6b171d7bfbaa5d006ae7abdb4310", "v5.0.1"),
    "helm/chart-testing-action": ("6ec842c01de15ebb84c8627d2744a0c2f2755c9f", "v2.8.0"),
    "helm/kind-action": ("ef37e7f390d99f746eb8b610417061a60e82a6cc", "v1.14.0"),
    "docker/setup-qemu-action": ("96fe6ef7f33517b61c61be40b68a1882f3264fb8", "v4.2.0"),
    "docker/setup-buildx-action": ("37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
    "docker/login-action": ("4907a6ddec9925e35a0a9e82d7399ccc52663121", "v4.1.0"),
    "docker/build-push-action": ("53b7df96c91f9c12dcc8a07bcb9ccacbed38856a", "v7.3.0"),
    "sigstore/cosign-installer": ("6f9f17788090df1f26f669e9d70d6ae9567deba6", "v4.1.2"),
    "oras-project/setup-oras": ("38de303aac69abb66f3e6255b7198bff35f323e3", "v2.0.0"),
}
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>\S+))?\s*$")
WORKFLOW_IDS = [p.name for p in workflow_files()]


def tool(name: str) -> str:
    """A console script of this environment (zizmor, check-jsonschema), beside the interpreter."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed: it is pinned in pyproject.toml's dev extra (make setup)"
    return found


def test_the_workflows_exist() -> None:
    assert {"ci.yaml", "release.yaml"} <= {p.name for p in workflow_files()}


@pytest.mark.parametrize("path", workflow_files(), ids=WORKFLOW_IDS)
def test_zizmor_offline_reports_nothing(path: Path) -> None:
    done = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, "No findings to report" in done.stdout) == (0, True), (
        f"zizmor --offline --persona pedantic {path.relative_to(ROOT)} (exit {done.returncode}):\n"
        f"{done.stdout}{done.stderr}"
    )


def test_zizmor_finds_what_it_should(tmp_path: Path) -> None:
    """The audit can fail: a tag-pinned action with persisted credentials is reported."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "on: push\npermissions: {}\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    permissions: {}\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
    )
    done = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0 and "unpinned-uses" in done.stdout and "artipacked" in done.stdout, (
        done.stdout
    )


@pytest.mark.parametrize("path", workflow_files(), ids=WORKFLOW_IDS)
def test_workflow_matches_the_github_workflow_schema(path: Path) -> None:
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"check-jsonschema (GitHub workflow schema) {path.name}:\n{done.stdout}"


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("on: push\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout


@pytest.mark.parametrize("path", workflow_files(), ids=WORKFLOW_IDS)
def test_every_action_is_pinned_to_its_verified_commit_with_the_tag_as_comment(path: Path) -> None:
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = USES_LINE.match(line)
        if not match:
            continue
        action, _, ref = match["ref"].partition("@")
        expected = VERIFIED_PINS.get(action)
        actual = (ref, match["comment"])
        if expected != actual:
            problems.append(
                f"{path.name}:{number}: {action}@{ref} # {match['comment']} (verified: {expected})"
            )
    assert problems == [], "actions not pinned to a verified commit + tag comment:\n" + "\n".join(problems)


def jobs(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return list(load_workflow(path)["jobs"].items())


@pytest.mark.parametrize("path", workflow_files(), ids=WORKFLOW_IDS)
def test_permissions_are_granted_per_job_only(path: Path) -> None:
    workflow = load_workflow(path)
    missing = [name for name, job in jobs(path) if "permissions" not in job]
    assert (workflow.get("permissions"), missing) == ({}, []), (
        f"{path.name}: workflow-level permissions must be {{}} and every job must name its own "
        f"(jobs without: {missing})"
    )


@pytest.mark.parametrize("path", workflow_files(), ids=WORKFLOW_IDS)
def test_checkouts_do_not_persist_credentials(path: Path) -> None:
    persisting = [
        name
        for name, job in jobs(path)
        for s in job.get("steps", [])
        if str(s.get("uses", "")).startswith("actions/checkout@")
        and (s.get("with") or {}).get("persist-credentials") is not False
    ]
    assert persisting == [], f"{path.name}: checkout without persist-credentials: false in {persisting}"


@pytest.mark.parametrize("path", workflow_files(), ids=WORKFLOW_IDS)
def test_no_template_expansion_inside_run(path: Path) -> None:
    expanded = [
        f"{name}: {s.get('name') or s.get('id') or s['run'][:40]}"
        for name, job in jobs(path)
        for s in job.get("steps", [])
        if "${{" in str(s.get("run", ""))
    ]
    assert expanded == [], f"{path.name}: pass these through env: instead of ${{{{ }}}} in run: {expanded}"


def test_mutation_check_runs_weekly_and_when_charts_change() -> None:
    workflow = load_workflow(CI_WORKFLOW)
    mutation = workflow["jobs"]["mutation"]
    condition = mutation["if"]
    changes = workflow["jobs"]["changes"]
    diff = next(s for s in changes["steps"] if s.get("id") == "diff")
    actual = {
        "schedule": [entry["cron"] for entry in workflow["on"].get("schedule", [])] != [],
        "runs on schedule": "github.event_name == 'schedule'" in condition,
        "runs when charts changed": "needs.changes.outputs.charts == 'true'" in condition,
        "needs the change detection": mutation["needs"] == "changes",
        "diff looks at charts/": "-- charts/" in diff["run"],
        "calls make mutation": any("make mutation" in str(s.get("run", "")) for s in mutation["steps"]),
    }
    assert actual == dict.fromkeys(actual, True), f"ci.yaml mutation job: {actual}"


def test_change_detection_says_what_changed(tmp_path: Path) -> None:
    """The `changes` step's script, run on a scratch repository: a commit touching charts/ is a change,
    one touching only docs is not, an unknown base (a new branch) counts as a change."""
    from tests.release.support import run_step

    script = next(s for s in load_workflow(CI_WORKFLOW)["jobs"]["changes"]["steps"] if s.get("id") == "diff")
    repo = tmp_path / "repo"
    (repo / "charts").mkdir(parents=True)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q")
    (repo / "charts" / "a").write_text("1")
    git("add", "-A")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD")
    (repo / "README").write_text("docs")
    git("add", "-A")
    git("commit", "-qm", "docs only")
    docs = git("rev-parse", "HEAD")
    (repo / "charts" / "a").write_text("2")
    git("add", "-A")
    git("commit", "-qm", "chart")
    chart = git("rev-parse", "HEAD")

    def charts_changed(event: str, base_sha: str, head: str) -> str:
        git("checkout", "-q", head)
        env = {
            "EVENT": event,
            "PR_BASE": base_sha if event == "pull_request" else "",
            "PUSH_BEFORE": base_sha,
        }
        done, outputs = run_step(script["run"], env, tmp_path, cwd=repo)
        assert done.returncode == 0, done.stderr
        return outputs["charts"]

    actual = {
        "push touching docs only": charts_changed("push", base, docs),
        "push touching charts/": charts_changed("push", docs, chart),
        "pull request touching charts/": charts_changed("pull_request", base, chart),
        "new branch (before = zeros)": charts_changed("push", "0" * 40, docs),
    }
    assert actual == {
        "push touching docs only": "false",
        "push touching charts/": "true",
        "pull request touching charts/": "true",
        "new branch (before = zeros)": "true",
    }
