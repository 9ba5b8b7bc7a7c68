"""The rendered pod's service container, run as a local process: the chart's command, env and port.

The demo and the chart contract tests start the service exactly as Kubernetes would from the rendered
release — command and args from the container, environment from the rendered ConfigMap and Secret
(envFrom and env, secretKeyRef values base64-decoded), the probes' paths — so a chart that would start
the service wrongly fails here first. Only the console script's location (the repo's .venv/bin) and the
bind address (loopback) differ from the cluster.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from loadtest.chart import release
from loadtest.probe import WaitAborted, WaitTimeout, wait_for_http

VENV_BIN = release.ROOT / ".venv" / "bin"
INHERITED_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL")
PROBES = {"startup": "startupProbe", "readiness": "readinessProbe", "liveness": "livenessProbe"}
LOOPBACK = "127.0.0.1"
_VAR_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def free_port() -> int:
    """A TCP port nothing listens on at loopback now (other servers share this machine)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class LocalPodError(RuntimeError):
    """The rendered pod cannot be run locally; the message names the object and field at fault."""


def resolve_executable(name: str, venv_bin: Path = VENV_BIN) -> str:
    """`model-api` → the repo's .venv/bin/model-api, else the one on PATH; absolute paths kept."""
    if os.path.isabs(name):
        return name
    local = venv_bin / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise LocalPodError(
            f"container command {name!r} is neither in {venv_bin} nor on PATH (run `make setup`)"
        )
    return found


def _data_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's data (base64-decoded) merged with its stringData."""
    if obj["kind"] == "Secret":
        decoded = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return {**decoded, **{k: str(v) for k, v in (obj.get("stringData") or {}).items()}}
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion against variables defined earlier; $$ escapes."""
    expanded = _VAR_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), value.replace("$$", "\0"))
    return expanded.replace("\0", "$")


class _EnvResolver:
    """Turns a container's envFrom and env into a plain environment, from the objects of one release."""

    def __init__(
        self, objects: Iterable[Mapping[str, Any]], container: Mapping[str, Any], pod_name: str
    ) -> None:
        self.objects = list(objects)
        self.container = container
        self.pod_name = pod_name

    def source(self, kind: str, name: str) -> dict[str, str] | None:
        found = release.find(self.objects, kind, name)
        return _data_of(found[0]) if found else None

    def from_env_from(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for index, entry in enumerate(self.container.get("envFrom") or []):
            kind, ref = (
                ("ConfigMap", entry["configMapRef"])
                if "configMapRef" in entry
                else ("Secret", entry.get("secretRef"))
            )
            if ref is None:
                raise LocalPodError(
                    f"container {self.container['name']}: envFrom[{index}] has no configMapRef or secretRef"
                )
            data = self.source(kind, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise LocalPodError(
                    f"container {self.container['name']}: envFrom[{index}] names {kind}/{ref['name']}, "
                    "which the release does not render"
                )
            env.update({entry.get("prefix", "") + key: value for key, value in data.items()})
        return env

    def value_from(self, item: Mapping[str, Any], overrides: Mapping[str, str]) -> str | None:
        name, source = item["name"], item["valueFrom"]
        if "fieldRef" in source:
            return self.field(name, source["fieldRef"]["fieldPath"])
        for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            if key in source:
                ref = source[key]
                data = self.source(kind, ref["name"])
                if data is not None and ref["key"] in data:
                    return data[ref["key"]]
                if name in overrides or ref.get("optional"):
                    return None
                where = (
                    "is not rendered by the release (external?)"
                    if data is None
                    else f"has no key {ref['key']!r}"
                )
                raise LocalPodError(
                    f"container {self.container['name']}: env {name} reads {kind}/{ref['name']} key "
                    f"{ref['key']!r}, which {where}; pass env_overrides={{{name!r}: ...}}"
                )
        raise LocalPodError(
            f"container {self.container['name']}: env {name}: unsupported valueFrom {sorted(source)}"
        )

    def field(self, name: str, path: str) -> str:
        known = {
            "metadata.name": self.pod_name,
            "metadata.namespace": release.DEFAULT_NAMESPACE,
            "status.podIP": LOOPBACK,
            "status.hostIP": LOOPBACK,
            "spec.nodeName": "localhost",
        }
        if path not in known:
            raise LocalPodError(
                f"container {self.container['name']}: env {name}: fieldRef {path!r} has no local value"
            )
        return known[path]

    def resolve(self, overrides: Mapping[str, str]) -> dict[str, str]:
        env = self.from_env_from()
        for item in self.container.get("env") or []:
            value = (
                _expand(item.get("value", ""), env)
                if "valueFrom" not in item
                else self.value_from(item, overrides)
            )
            if value is not None:
                env[item["name"]] = value
        return env


def service_link_env(objects: Iterable[Mapping[str, Any]], cluster_ip: str = "10.96.0.10") -> dict[str, str]:
    """The Docker-link variables the kubelet adds for each Service of the namespace unless the pod sets
    enableServiceLinks: false (a Service named model-api yields MODEL_API_PORT=tcp://...). `cluster_ip`
    stands in for the address the cluster would assign."""
    env: dict[str, str] = {}
    for service in release.find(objects, "Service"):
        spec = service.get("spec") or {}
        if spec.get("clusterIP") == "None" or not spec.get("ports") or release.is_hook(dict(service)):
            continue
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        first = spec["ports"][0]
        env[f"{prefix}_SERVICE_HOST"] = cluster_ip
        env[f"{prefix}_SERVICE_PORT"] = str(first["port"])
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{cluster_ip}:{first['port']}"
        for port in spec["ports"]:
            protocol = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
            link = f"{prefix}_PORT_{port['port']}_{protocol}"
            env.update(
                {
                    link: f"{protocol.lower()}://{cluster_ip}:{port['port']}",
                    f"{link}_PROTO": protocol.lower(),
                    f"{link}_PORT": str(port["port"]),
                    f"{link}_ADDR": cluster_ip,
                }
            )
    return env


def container_env(
    objects: Iterable[Mapping[str, Any]],
    container: Mapping[str, Any],
    env_overrides: Mapping[str, str] | None = None,
    *,
    pod_name: str = "local",
) -> dict[str, str]:
    """A container's environment as the kubelet would build it from the release's ConfigMaps and Secrets
    (envFrom, then env in order), with `env_overrides` on top. LocalPodError names an unresolvable entry."""
    overrides = dict(env_overrides or {})
    return {**_EnvResolver(objects, container, pod_name).resolve(overrides), **overrides}


def serve_arguments(
    env: Mapping[str, str], port: int | None = None
) -> tuple[list[str], dict[str, str], int, dict[str, Any]]:
    """(command, env, port, container) of `model-api serve` on loopback: this process's environment with
    `env` on top, a free port unless `port`, readiness on /readyz."""
    chosen = free_port() if port is None else port
    command = [resolve_executable("model-api"), "serve"]
    environment = {**os.environ, **env, "MODEL_API_HOST": LOOPBACK, "MODEL_API_PORT": str(chosen)}
    container = {"name": "model-api", "readinessProbe": {"httpGet": {"path": "/readyz", "port": chosen}}}
    return command, environment, chosen, container


class LocalPod:
    """The service as a local process, in its own session (so a signal can go to its whole group): the
    rendered pod's service container (`from_release`: rendered command, env with ConfigMap and Secret
    resolved, port, probes) or `model-api serve` with a given environment (`serve`). The one wrapper for
    "the service as a local process" of the demo, the contract tests, the service tests and the bench."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        port: int,
        container: Mapping[str, Any],
        grace_seconds: float = 30.0,
        log_path: Path | None = None,
    ) -> None:
        self.command = command
        self.env = env
        self.port = port
        self.container = dict(container)
        self.grace_seconds = grace_seconds  # the rendered terminationGracePeriodSeconds
        self.log_path = log_path  # where stdout and stderr go; None: a temporary file
        self.new_session = True  # its own session and process group, which a signal may address whole
        self.process: subprocess.Popen[bytes] | None = None
        self._captured: str | None = None  # the output, kept once the log file is closed
        # lives as long as the pod; closed in __exit__
        self._log = log_path.open("w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115

    @classmethod
    def serve(
        cls,
        env: Mapping[str, str],
        *,
        port: int | None = None,
        log_path: Path | None = None,
        grace_seconds: float = 30.0,
    ) -> LocalPod:
        """`model-api serve` on loopback (a free port unless `port`), this process's environment with `env`
        on top; readiness is `/readyz`."""
        return cls(*serve_arguments(env, port), grace_seconds=grace_seconds, log_path=log_path)

    @classmethod
    def from_release(
        cls,
        objects: Iterable[Mapping[str, Any]],
        *,
        port: int | None = None,
        env_overrides: Mapping[str, str] | None = None,
    ) -> LocalPod:
        """Build from rendered objects; `port` replaces the rendered port (MODEL_API_PORT and probes)."""
        objects = list(objects)
        container = release.main_container(objects)
        rendered = [*container.get("command", []), *container.get("args", [])]
        if not rendered:
            raise LocalPodError(
                f"container {container['name']}: no command or args rendered (image default unknown here)"
            )
        overrides = dict(env_overrides or {})
        pod_spec = release.workload(objects)["spec"]["template"]["spec"]
        pod_name = f"{release.workload(objects)['metadata']['name']}-local"
        env = container_env(objects, container, overrides, pod_name=pod_name)
        if pod_spec.get("enableServiceLinks", True):  # the kubelet adds them where the container has no value
            env = {**service_link_env(objects), **env}
        container_port = cls._http_port(container)
        chosen = container_port if port is None else port
        if port is not None:
            env["MODEL_API_PORT"] = str(port)
        env["MODEL_API_HOST"] = LOOPBACK  # never listen beyond loopback on a shared machine
        env.update(overrides)
        env.update({k: os.environ[k] for k in INHERITED_ENV if k in os.environ and k not in env})
        command = [resolve_executable(rendered[0]), *rendered[1:]]
        grace = pod_spec.get("terminationGracePeriodSeconds", 30)
        return cls(command, env, chosen, container, float(grace))

    @staticmethod
    def _http_port(container: Mapping[str, Any]) -> int:
        ports = container.get("ports") or []
        if not ports:
            raise LocalPodError(f"container {container['name']}: no ports rendered")
        named = [p for p in ports if p.get("name") == "http"]
        return int((named or ports)[0]["containerPort"])

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def probe_urls(self) -> dict[str, str]:
        """{"startup"|"readiness"|"liveness": url} for each rendered httpGet probe, on the local port."""
        urls = {}
        for name, key in PROBES.items():
            http_get = (self.container.get(key) or {}).get("httpGet")
            if http_get:
                urls[name] = self.url(http_get.get("path", "/"))
        return urls

    def start(self) -> LocalPod:
        if self.process is not None:
            raise LocalPodError("the local pod is already started")
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=self._output_stream(),
            stderr=subprocess.STDOUT,
            start_new_session=self.new_session,
        )
        return self

    def _output_stream(self) -> Any:
        """Where stdout and stderr go: the log (a subclass may hand the test a pipe instead)."""
        return self._log

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        if self._captured is not None:
            return self._captured
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def exited(self) -> str | None:
        """None while the process runs; else how it ended, with the end of its output."""
        if self.process is None or self.process.poll() is None:
            return None
        return f"{self.command} exited with {self.process.returncode}:\n{self.output()[-4000:]}"

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Poll the rendered readiness probe until 200; seconds taken. LocalPodError on exit or timeout."""
        return self.wait_for(self.probe_urls().get("readiness") or self.url("/"), 200, timeout)

    def wait_for(self, url: str, status: int, timeout: float) -> float:
        """Poll GET `url` until it answers `status`; seconds taken. LocalPodError on exit or timeout."""
        if self.process is None:
            raise LocalPodError("wait_for() before start()")
        try:
            return wait_for_http(url, status=status, timeout=timeout, gave_up=self.exited)
        except WaitAborted:
            raise LocalPodError(f"{self.exited()}\n(before {url} answered {status})") from None
        except WaitTimeout as exc:
            raise LocalPodError(f"{exc}:\n{self.output()[-4000:]}") from None

    def send_signal(self, signum: int) -> None:
        """Deliver a signal without waiting (terminate() is SIGTERM and wait)."""
        if self.process is None:
            raise LocalPodError("send_signal() before start()")
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL and reap, for callers that tested graceful stop elsewhere and only need it gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def terminate(self, timeout: float) -> int:
        """SIGTERM (as the kubelet sends after preStop); the exit code. Kill + TimeoutError past `timeout`."""
        if self.process is None:
            raise LocalPodError("terminate() before start()")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise TimeoutError(f"{self.command} still running {timeout} s after SIGTERM; killed") from None

    def __enter__(self) -> LocalPod:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(TimeoutError):  # already killed; the with-block's outcome matters more
                self.terminate(timeout=self.grace_seconds)
        self.close()

    def close(self) -> None:
        """Keep the output readable and release the log file (the process must have ended)."""
        if self._captured is None:
            self._captured = self.output()
            self._log.close()


def container_process(
    objects: Iterable[Mapping[str, Any]],
    container: Mapping[str, Any],
    mounts: Mapping[str, Path],
    env_overrides: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """(argv, env) to run a rendered run-to-completion container (an init container, a Job's) locally: its
    command and env as the kubelet builds them, paths inside its volume mounts pointed at `mounts`
    (from `volumes.LocalVolumes.mounts`), `env_overrides` on top."""
    from loadtest.chart.volumes import localize_all

    rendered = [*container.get("command", []), *container.get("args", [])]
    if not rendered:
        raise LocalPodError(f"container {container['name']}: no command or args rendered")
    env = localize_all(container_env(objects, container, env_overrides), mounts)
    env.update({k: os.environ[k] for k in INHERITED_ENV if k in os.environ and k not in env})
    return [resolve_executable(rendered[0]), *localize_all(rendered[1:], mounts)], env
