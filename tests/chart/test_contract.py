"""Contract layer: the chart and the service agree, proven by running the service exactly as the rendered
pod says (loadtest/chart/localpod.py: rendered command, env from the rendered ConfigMap and Secret, port) —
probes answer 200, the helm test hook's own command passes against it, SIGTERM ends it cleanly within the
grace period left after the preStop sleep — and the Dockerfile agrees with the chart's port, user and
command. Also the unit tests of LocalPod itself."""

from __future__ import annotations

import base64
import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from loadtest.chart import localpod, release
from loadtest.chart.localpod import LocalPod, LocalPodError, free_port
from loadtest.probe import http_get, wait_until
from tests.chart import helpers
from tests.docker.dockerfile import Dockerfile

DOCKERFILE = Path(
    os.environ.get("MODEL_API_DOCKERFILE") or release.ROOT / "Dockerfile"
)  # env: mutation checks
RUN_SETS = ("dev", "prod")  # started for real; the other sets share their pod spec
TEST_API_KEY = "contract-test-key"  # stands in for prod's existingSecret, which only a cluster has


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    """The status GET `url` answers; 0 when nothing listens."""
    try:
        return http_get(url, timeout=5, headers=headers)[0]
    except OSError:
        return 0


def secret_file_overrides(objects: list[helpers.Manifest], root: Path) -> dict[str, str]:
    """The kubelet's part for the pod's volumes (the API key file): made under `root` (an
    apiKey.existingSecret, which only a cluster has, holds TEST_API_KEY) and the env pointed at them."""
    return helpers.local_pod_env(objects, root, TEST_API_KEY)[1]


def prestop_seconds(objects: list[helpers.Manifest]) -> int:
    return helpers.main_container(objects)["lifecycle"]["preStop"]["sleep"]["seconds"]


class RunningRelease:
    """A value set's rendered pod, started as a local process on a free port."""

    def __init__(self, value_set: str) -> None:
        self.value_set = value_set
        self.objects = helpers.render_set(value_set)
        self.secrets = tempfile.TemporaryDirectory()
        self.overrides = secret_file_overrides(self.objects, Path(self.secrets.name))
        self.pod = LocalPod.from_release(self.objects, port=free_port(), env_overrides=self.overrides)


@pytest.fixture(scope="module", params=RUN_SETS)
def running(request: pytest.FixtureRequest) -> Iterator[RunningRelease]:
    started = RunningRelease(request.param)
    started.pod.start()
    try:
        started.pod.wait_ready(timeout=30)
        yield started
    finally:
        started.pod.kill()  # graceful stop has its own test; skip the drain here


@pytest.mark.slow
def test_rendered_probes_answer_200(running: RunningRelease) -> None:
    urls = running.pod.probe_urls()
    actual = {name: http_status(url) for name, url in urls.items()}
    expected = {"startup": 200, "readiness": 200, "liveness": 200}
    assert actual == expected, (
        f"{running.value_set}: {helpers.label(helpers.workload(running.objects))} probes {urls}"
    )


def hook_command(running: RunningRelease) -> tuple[list[str], dict[str, str]]:
    """The helm test hook's command with its in-cluster URL pointed at the local pod, and its env."""
    hook = helpers.helm_test_pod(running.objects)
    container = hook["spec"]["containers"][0]
    command = [*container.get("command", []), *container.get("args", [])]
    local = [
        urlunsplit(("http", f"127.0.0.1:{running.pod.port}", *urlsplit(part)[2:]))
        if part.startswith("http://")
        else part
        for part in command
    ]
    env = localpod.container_env(running.objects, container, running.overrides)
    inherited = {k: v for k, v in running.pod.env.items() if k in localpod.INHERITED_ENV}
    return [localpod.resolve_executable(local[0]), *local[1:]], {**inherited, **env}


@pytest.mark.slow
def test_helm_test_hook_passes_against_the_pod(running: RunningRelease) -> None:
    command, env = hook_command(running)
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode == 0, (
        f"{running.value_set}: {helpers.label(helpers.helm_test_pod(running.objects))}: "
        f"`{shlex.join(command)}` exited {finished.returncode}:\n{finished.stdout}{finished.stderr}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("value_set", RUN_SETS)
def test_sigterm_stops_within_the_grace_period(value_set: str) -> None:
    started = RunningRelease(value_set)
    spec = helpers.workload(started.objects)["spec"]["template"]["spec"]
    budget = spec.get("terminationGracePeriodSeconds", 30) - prestop_seconds(started.objects)
    with started.pod as pod:
        pod.wait_ready(timeout=30)
        began = time.monotonic()
        try:
            code = pod.terminate(timeout=budget)
        except TimeoutError as error:
            pytest.fail(
                f"{value_set}: still running {budget} s after SIGTERM "
                f"(terminationGracePeriodSeconds - preStop): {error}"
            )
        took = time.monotonic() - began
    assert code == 0, (
        f"{value_set}: exit code {code} after SIGTERM (took {took:.1f} s):\n{pod.output()[-2000:]}"
    )


@pytest.mark.slow
def test_readiness_fails_before_the_listener_closes_on_sigterm() -> None:
    """Endpoints must drop the pod while it drains: after SIGTERM, the first answer of the readiness probe
    that is not 200 is a 503, before the process stops listening (a refused connection, status 0)."""
    started = RunningRelease("dev")
    with started.pod as pod:
        pod.wait_ready(timeout=30)
        pod.send_signal(signal.SIGTERM)  # without waiting, to watch the drain
        readiness = pod.probe_urls()["readiness"]

        def answer_other_than_200() -> tuple[int] | None:
            status = http_status(readiness)  # 0: nothing listens any more
            return None if status == 200 else (status,)

        (status,) = wait_until(
            answer_other_than_200, timeout=pod.grace_seconds, what="readiness to stop answering 200"
        )
        pod.terminate(timeout=30)
    assert status == 503, (
        f"dev: readiness answered {status} after SIGTERM, expected 503 before the listener closed"
    )


# --- Dockerfile agreement ----------------------------------------------------------------------------


def dockerfile_value(name: str) -> str:
    """The last `name` instruction's arguments in the final stage (tests/docker/dockerfile.py's reader)."""
    values = Dockerfile.load(DOCKERFILE).final.all(name)
    assert values, f"Dockerfile: the final stage has no {name}"
    return values[-1].value


def test_dockerfile_entrypoint_is_the_rendered_command(objects: list[helpers.Manifest]) -> None:
    container = helpers.main_container(objects)
    entrypoint = json.loads(dockerfile_value("ENTRYPOINT"))
    assert container.get("command") == entrypoint, (
        f"{helpers.label(helpers.workload(objects))}: containers[{container['name']}].command "
        f"{container.get('command')} != Dockerfile ENTRYPOINT {entrypoint}"
    )


def test_dockerfile_exposes_the_container_port(objects: list[helpers.Manifest]) -> None:
    container = helpers.main_container(objects)
    exposed = {int(p.split("/")[0]) for p in dockerfile_value("EXPOSE").split()}
    http = next(p["containerPort"] for p in container["ports"] if p.get("name") == "http")
    assert http in exposed, (
        f"containers[{container['name']}].ports[http].containerPort {http} not in Dockerfile EXPOSE {exposed}"
    )


def test_dockerfile_user_is_the_rendered_numeric_user(objects: list[helpers.Manifest]) -> None:
    user, _, group = dockerfile_value("USER").partition(":")
    assert user.isdigit() and (not group or group.isdigit()), (
        f"Dockerfile USER {user}:{group} must be numeric"
    )
    spec, container = helpers.workload(objects)["spec"]["template"]["spec"], helpers.main_container(objects)
    context = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    actual = (context.get("runAsUser"), context.get("runAsGroup") if group else None)
    assert actual == (int(user), int(group) if group else None), (
        f"{helpers.label(helpers.workload(objects))}: securityContext.runAsUser/runAsGroup {actual} "
        "!= Dockerfile USER"
    )


def test_dockerfile_reader_reads_the_final_stage_with_continuations(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM a AS build\nUSER 1\nFROM b\n# comment\nRUN x \\\n    && y\n"
        'USER 10001:10001\nENTRYPOINT ["m", "serve"]\n'
    )
    final = Dockerfile.load(dockerfile).final
    actual = (final.base, [(i.keyword, i.value) for i in final.instructions])
    expected = ("b", [("RUN", "x && y"), ("USER", "10001:10001"), ("ENTRYPOINT", '["m", "serve"]')])
    assert actual == expected, "(base, instructions) of the final stage"


# --- LocalPod itself ---------------------------------------------------------------------------------


def key_ref(secret: str, key: str = "api-key") -> list[dict[str, object]]:
    """extraEnv taking a Secret's key: what LocalPod resolves like the kubelet (the chart's own API key is a
    file, never an env var)."""
    return [{"name": "MODEL_API_EXTRA_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}]


def test_local_pod_env_comes_from_the_rendered_config_and_secret() -> None:
    values = {
        "apiKey": {"value": "s3cret"},
        "config": {"logLevel": "warning"},
        "extraEnv": key_ref("model-api"),
    }
    objects = helpers.render(values)
    pod = LocalPod.from_release(objects, port=12345)
    config = helpers.get(objects, "ConfigMap", helpers.FULLNAME)["data"]
    expected = {
        **config,
        "MODEL_API_API_KEY_FILE": "/var/run/secrets/model-api/api-key",
        "MODEL_API_EXTRA_TOKEN": "s3cret",
        "MODEL_API_PORT": "12345",
        "MODEL_API_HOST": "127.0.0.1",
    }
    actual = {k: v for k, v in pod.env.items() if k.startswith("MODEL_API_")}
    assert actual == expected


def test_local_pod_resolves_config_map_key_refs_and_expansion() -> None:
    extra = [
        {
            "name": "LEVEL",
            "valueFrom": {"configMapKeyRef": {"name": helpers.FULLNAME, "key": "MODEL_API_LOG_LEVEL"}},
        },
        {"name": "COPY", "value": "level=$(LEVEL) kept=$$(LEVEL)"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    pod = LocalPod.from_release(helpers.render({"extraEnv": extra, "config": {"logLevel": "error"}}))
    actual = {k: pod.env[k] for k in ("LEVEL", "COPY", "POD")}
    assert actual == {"LEVEL": "error", "COPY": "level=error kept=$(LEVEL)", "POD": "model-api-local"}


def test_local_pod_refuses_an_unresolvable_external_secret() -> None:
    objects = helpers.render({"extraEnv": key_ref("vault-synced")})
    with pytest.raises(LocalPodError, match=r"MODEL_API_EXTRA_TOKEN.*Secret/vault-synced.*env_overrides"):
        LocalPod.from_release(objects)
    pod = LocalPod.from_release(objects, env_overrides={"MODEL_API_EXTRA_TOKEN": "given"})
    assert pod.env["MODEL_API_EXTRA_TOKEN"] == "given"


def test_local_pod_decodes_secret_data() -> None:
    objects = helpers.render({"apiKey": {"value": "x"}, "extraEnv": key_ref("model-api")})
    secret = helpers.get(objects, "Secret", helpers.FULLNAME)
    secret["data"]["api-key"] = base64.b64encode(b"from-data").decode()
    assert LocalPod.from_release(objects).env["MODEL_API_EXTRA_TOKEN"] == "from-data"


def test_secret_files_are_written_as_the_kubelet_mounts_them(tmp_path: Path) -> None:
    objects = helpers.render({"apiKey": {"value": "dev-key"}})
    overrides = secret_file_overrides(objects, tmp_path)
    path = Path(overrides["MODEL_API_API_KEY_FILE"])
    actual = (path.parent.parent == tmp_path, path.name, path.read_text())
    assert actual == (True, "api-key", "dev-key")


def test_local_pod_port_and_probe_urls() -> None:
    objects = helpers.render()
    rendered, chosen = LocalPod.from_release(objects), LocalPod.from_release(objects, port=23456)
    actual = (rendered.port, chosen.probe_urls()["liveness"], chosen.url("/x"))
    assert actual == (8080, "http://127.0.0.1:23456/healthz", "http://127.0.0.1:23456/x")


def with_sidecar_first(objects: list[helpers.Manifest]) -> list[helpers.Manifest]:
    """The release with its service container renamed `server` and a sidecar listed before it."""
    spec = helpers.workload(objects)["spec"]["template"]["spec"]
    sidecar = {
        "name": "proxy",
        "image": "envoyproxy/envoy:v1.31.0",
        "command": ["envoy"],
        "ports": [{"name": "admin", "containerPort": 9901}],
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
    }
    spec["containers"] = [sidecar, {**spec["containers"][0], "name": "server"}]
    return objects


def test_local_pod_runs_the_container_the_service_targets() -> None:
    """The service container is the one the Service's targetPort names, wherever it is listed and whatever
    its name (it used to be assumed to be called model-api, else the first)."""
    pod = LocalPod.from_release(with_sidecar_first(helpers.render()))
    expected = ("server", [str(localpod.VENV_BIN / "model-api"), "serve"])
    actual = (pod.container["name"], pod.command)
    assert actual == expected, "(container run, its command) with a sidecar listed first"


def test_local_pod_command_comes_from_the_venv() -> None:
    pod = LocalPod.from_release(helpers.render())
    assert pod.command == [str(localpod.VENV_BIN / "model-api"), "serve"]


def test_local_pod_unknown_command_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalPodError, match="no-such-binary"):
        localpod.resolve_executable("no-such-binary", venv_bin=tmp_path)


def test_local_pod_refuses_use_before_start() -> None:
    pod = LocalPod.from_release(helpers.render())
    with pytest.raises(LocalPodError, match="before start"):
        pod.terminate(timeout=1)


def test_service_links_are_what_the_kubelet_would_add() -> None:
    """A Service named model-api yields MODEL_API_* link variables; LocalPod adds them unless links off."""
    links = localpod.service_link_env(helpers.render())
    expected = {
        "MODEL_API_SERVICE_HOST": "10.96.0.10",
        "MODEL_API_SERVICE_PORT": "80",
        "MODEL_API_SERVICE_PORT_HTTP": "80",
        "MODEL_API_PORT": "tcp://10.96.0.10:80",
        "MODEL_API_PORT_80_TCP": "tcp://10.96.0.10:80",
        "MODEL_API_PORT_80_TCP_PROTO": "tcp",
        "MODEL_API_PORT_80_TCP_PORT": "80",
        "MODEL_API_PORT_80_TCP_ADDR": "10.96.0.10",
    }
    assert links == expected
