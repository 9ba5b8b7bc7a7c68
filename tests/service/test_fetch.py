"""`model-api fetch` as the chart's init container runs it: every exit code, against real servers on loopback.

Exit codes: 0 done or cache hit, 2 bad arguments or configuration, 3 transfer failed after retries,
4 integrity. Each test runs the installed command in a subprocess and reads its JSON log lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers.flaky_http import FlakyHTTPServer, stall, status, truncate
from tests.servers.s3_server import S3Server
from tests.servers.tls import Certificate

MODEL_API = Path(sys.executable).parent / "model-api"
ARTIFACT = bytes(range(256)) * 4096 + b"the end"  # 1 MiB and a bit: several reads
DIGEST = hashlib.sha256(ARTIFACT).hexdigest()
WRONG_DIGEST = hashlib.sha256(b"some other model").hexdigest()
FAST_RETRIES = ("--retries", "2", "--backoff", "0.05")
# A bounded wait for the subprocess, far above any deadline a test passes: a hang fails, time is not asserted.
PROCESS_TIMEOUT = 120


class Fetched:
    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.code = result.returncode
        self.stderr = result.stderr
        self.lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]

    def outcome(self) -> dict[str, Any]:
        """The one outcome line: the last, and the only one that carries exit_code."""
        outcomes = [line for line in self.lines if "exit_code" in line]
        assert len(outcomes) == 1, f"expected one outcome line, got: {self.stderr}"
        return outcomes[0]


def fetch(*args: str, env: dict[str, str] | None = None) -> Fetched:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_API_"))}
    environ.update(env or {}, MODEL_API_LOG_FORMAT="json", HOME=os.environ.get("HOME", "/nonexistent"))
    result = subprocess.run(
        [str(MODEL_API), "fetch", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    return Fetched(result)


def fetch_to(
    dest: Path, uri: str, *extra: str, sha256: str | None = DIGEST, env: dict[str, str] | None = None
) -> Fetched:
    """`model-api fetch --uri URI --sha256 DIGEST --dest DEST`, plain http allowed for the flaky server."""
    pin = ("--sha256", sha256) if sha256 else ()
    insecure = ("--allow-insecure-http",) if uri.startswith("http://") else ()
    return fetch("--uri", uri, *pin, "--dest", str(dest), *insecure, *extra, env=env)


def listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


# --- 0: done, and a cache hit with the server stopped ---------------------------------------------------


def test_http_fetch_writes_the_artifact_and_its_marker(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/models/iris.onnx", ARTIFACT)

    done = fetch_to(tmp_path, url)

    assert (done.code, done.outcome()["cache_hit"]) == (0, False), done.stderr
    assert (tmp_path / "iris.onnx").read_bytes() == ARTIFACT
    marker = json.loads((tmp_path / "iris.onnx.fetched.json").read_text())
    expected = {"uri": url, "sha256": DIGEST, "size": len(ARTIFACT)}
    assert {key: marker[key] for key in expected} == expected
    assert listing(tmp_path) == ["iris.onnx", "iris.onnx.fetched.json"]


def test_s3_fetch_with_credentials_from_env_then_cache_hit_with_the_server_stopped(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    with S3Server(tmp_path / "s3") as s3:
        uri = s3.put("iris/v1/model.onnx", ARTIFACT)
        first = fetch_to(dest, uri, env=s3.env())
    assert (first.code, first.outcome()["cache_hit"]) == (0, False), first.stderr

    second = fetch_to(dest, uri, env=s3.env())  # nothing listens on the endpoint now

    assert (second.code, second.outcome()["cache_hit"], second.outcome()["attempts"]) == (0, True, 0)
    assert (dest / "model.onnx").read_bytes() == ARTIFACT


def test_a_damaged_cached_file_is_fetched_again(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT)
    assert fetch_to(tmp_path, url).code == 0
    (tmp_path / "model.onnx").write_bytes(ARTIFACT[:-1] + b"!")

    again = fetch_to(tmp_path, url)

    assert (again.code, again.outcome()["cache_hit"], flaky_http.hits("/model.onnx")) == (0, False, 2)
    assert (tmp_path / "model.onnx").read_bytes() == ARTIFACT


def test_a_new_pin_replaces_the_cached_artifact(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    v2 = ARTIFACT + b" v2"
    assert fetch_to(tmp_path, flaky_http.add("/model.onnx", ARTIFACT)).code == 0
    flaky_http.add("/model.onnx", v2)

    update = fetch_to(tmp_path, flaky_http.url("/model.onnx"), sha256=hashlib.sha256(v2).hexdigest())

    assert (update.code, update.outcome()["cache_hit"]) == (0, False)
    assert (tmp_path / "model.onnx").read_bytes() == v2


@pytest.mark.parametrize("form", ["file_uri", "plain_path"])
def test_local_sources(form: str, tmp_path: Path) -> None:
    source = tmp_path / "built" / "model.onnx"
    source.parent.mkdir()
    source.write_bytes(ARTIFACT)

    done = fetch_to(tmp_path / "model", source.as_uri() if form == "file_uri" else str(source))

    assert done.code == 0, done.stderr
    assert (tmp_path / "model" / "model.onnx").read_bytes() == ARTIFACT


def test_retry_succeeds_after_500_then_200(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT, status(500), status(503))

    done = fetch_to(tmp_path, url, *FAST_RETRIES)

    assert (done.code, done.outcome()["attempts"], flaky_http.hits("/model.onnx")) == (0, 3, 3), done.stderr
    assert (tmp_path / "model.onnx").read_bytes() == ARTIFACT


def test_retry_after_is_honoured(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT, status(429, retry_after=1))

    done = fetch_to(tmp_path, url, *FAST_RETRIES)

    retries = [line["message"] for line in done.lines if line["level"] == "warning"]
    assert (done.code, len(retries)) == (0, 1), done.stderr
    assert "retrying in 1.0 s" in retries[0]  # not the 0.05 s backoff asked for on the command line


def test_unverified_fetch_warns(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT)

    done = fetch_to(tmp_path, url, "--allow-unverified", sha256=None)

    warnings = [line["message"] for line in done.lines if line["level"] == "warning"]
    assert (done.code, len(warnings)) == (0, 1), done.stderr
    assert "not verified" in warnings[0]
    assert done.outcome()["sha256"] == DIGEST


def test_https_trusted_through_ssl_cert_file(tls_certificate: Certificate, tmp_path: Path) -> None:
    with FlakyHTTPServer(tls=tls_certificate) as https:
        url = https.add("/model.onnx", ARTIFACT)
        done = fetch_to(tmp_path, url, env={"SSL_CERT_FILE": str(tls_certificate.cert)})

    assert done.code == 0, done.stderr
    assert (tmp_path / "model.onnx").read_bytes() == ARTIFACT


def test_s3_over_https_trusted_through_aws_ca_bundle(tls_certificate: Certificate, tmp_path: Path) -> None:
    with S3Server(tmp_path / "s3", tls=tls_certificate) as s3:
        uri = s3.put("tls/model.onnx", ARTIFACT)
        done = fetch_to(tmp_path / "model", uri, env=s3.env())

    assert (s3.endpoint_url.startswith("https://"), done.code) == (True, 0), done.stderr
    assert (tmp_path / "model" / "model.onnx").read_bytes() == ARTIFACT


# --- 2: bad arguments or configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--uri", "https://models.example/iris.onnx"], "--sha256 is required"),
        (["--uri", "https://models.example/iris.onnx", "--sha256", ""], "--sha256 is required"),
        (["--uri", "s3://models/iris.onnx", "--sha256", "abc123"], "--sha256 must be 64 hexadecimal"),
        (["--uri", "http://models.example/iris.onnx", "--sha256", DIGEST], "--allow-insecure-http"),
        (["--uri", "ftp://models.example/iris.onnx", "--sha256", DIGEST], "unsupported scheme"),
        (["--uri", "s3://models/iris/", "--sha256", DIGEST], "s3://bucket/key"),
        (["--uri", "https://models.example/", "--sha256", DIGEST], "must end with a file name"),
        (["--uri", "https://models.example/m.onnx", "--sha256", DIGEST, "--deadline", "0"], "deadline"),
        (["--uri", "s3://models/iris.onnx", "--sha256", DIGEST], "no S3 credentials"),
    ],
    ids=[
        "no-sha256",
        "empty-sha256",
        "bad-sha256",
        "http",
        "ftp",
        "s3-prefix",
        "no-name",
        "zero-deadline",
        "no-credentials",
    ],
)
def test_bad_arguments_exit_2(args: list[str], named: str, tmp_path: Path) -> None:
    failed = fetch(*args, "--dest", str(tmp_path / "model"))

    assert (failed.code, failed.outcome()["exit_code"]) == (2, 2), failed.stderr
    assert named in failed.outcome()["message"]
    assert listing(tmp_path / "model") == []


def test_a_destination_that_cannot_take_the_file_exits_2(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").mkdir()  # the final name is taken by a directory: the rename must fail
    url = flaky_http.add("/model.onnx", ARTIFACT)

    failed = fetch_to(tmp_path, url, *FAST_RETRIES)

    assert (failed.code, flaky_http.hits("/model.onnx")) == (2, 1), failed.stderr
    assert f"cannot write {tmp_path}" in failed.outcome()["message"]
    assert listing(tmp_path) == ["model.onnx"]  # no temporary file left beside it


def test_missing_required_option_exits_2(tmp_path: Path) -> None:
    assert fetch("--dest", str(tmp_path)).code == 2


# --- 3: transfer failed after retries -------------------------------------------------------------------


def test_truncated_body_exits_3_and_leaves_no_file(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT, *[truncate(len(ARTIFACT) // 2)] * 3)

    failed = fetch_to(tmp_path, url, *FAST_RETRIES)

    assert (failed.code, failed.outcome()["attempts"], flaky_http.hits("/model.onnx")) == (3, 3, 3)
    assert "truncated" in failed.outcome()["message"]
    assert listing(tmp_path) == []


@pytest.mark.parametrize("deadline", ["3"])
def test_stall_exits_3_within_the_deadline(
    flaky_http: FlakyHTTPServer, tmp_path: Path, deadline: str
) -> None:
    # The read timeout alone would wait 300 s for each read: only the deadline can end this run.
    url = flaky_http.add("/model.onnx", ARTIFACT, *[stall(after=4096)] * 10)

    failed = fetch_to(tmp_path, url, "--read-timeout", "300", "--deadline", deadline, "--retries", "5")

    assert failed.code == 3, failed.stderr
    assert "deadline" in failed.outcome()["message"]
    assert listing(tmp_path) == []


def test_stall_past_the_read_timeout_is_retried_then_exits_3(
    flaky_http: FlakyHTTPServer, tmp_path: Path
) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT, *[stall(after=4096)] * 3)

    failed = fetch_to(tmp_path, url, "--read-timeout", "0.5", "--retries", "1", "--backoff", "0.05")

    assert (failed.code, flaky_http.hits("/model.onnx")) == (3, 2), failed.stderr
    assert "no data for 0.5 s" in failed.outcome()["message"]
    assert listing(tmp_path) == []


def test_500s_exit_3_after_the_retries(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT, *[status(500)] * 3)

    failed = fetch_to(tmp_path, url, *FAST_RETRIES)

    assert (failed.code, failed.outcome()["attempts"], flaky_http.hits("/model.onnx")) == (3, 3, 3)
    assert "HTTP 500" in failed.outcome()["message"]


def test_404_is_not_retried(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT, status(404))

    failed = fetch_to(tmp_path, url, *FAST_RETRIES)

    assert (failed.code, flaky_http.hits("/model.onnx")) == (3, 1)


def test_connection_refused_exits_3(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT)
    flaky_http.stop()

    failed = fetch_to(tmp_path, url, *FAST_RETRIES)

    assert (failed.code, failed.outcome()["attempts"]) == (3, 3), failed.stderr


def test_untrusted_certificate_exits_3_without_retrying(tls_certificate: Certificate, tmp_path: Path) -> None:
    with FlakyHTTPServer(tls=tls_certificate) as https:
        url = https.add("/model.onnx", ARTIFACT)
        failed = fetch_to(tmp_path, url, *FAST_RETRIES)

    assert (failed.code, failed.outcome()["attempts"]) == (3, 1), failed.stderr
    assert "TLS certificate not trusted" in failed.outcome()["message"]


def test_missing_s3_object_exits_3(s3_server: S3Server, tmp_path: Path) -> None:
    failed = fetch_to(tmp_path, s3_server.uri("absent/model.onnx"), env=s3_server.env())

    assert failed.code == 3, failed.stderr
    assert "HTTP 404" in failed.outcome()["message"]
    assert "NoSuchKey" in failed.outcome()["message"]


def test_parallel_fetches_into_one_directory_all_succeed(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    # As batch shards started side by side on one machine do: each writes its own temporary file.
    url = flaky_http.add("/model.onnx", ARTIFACT)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_API_"))}
    command = [str(MODEL_API), "fetch", "--uri", url, "--sha256", DIGEST, "--dest", str(tmp_path)]
    processes = [
        subprocess.Popen([*command, "--allow-insecure-http"], env=environ, stderr=subprocess.DEVNULL)
        for _ in range(4)
    ]

    codes = [process.wait(timeout=PROCESS_TIMEOUT) for process in processes]

    assert codes == [0, 0, 0, 0]
    assert listing(tmp_path) == ["model.onnx", "model.onnx.fetched.json"]
    assert (tmp_path / "model.onnx").read_bytes() == ARTIFACT


# --- the kubelet's signals -----------------------------------------------------------------------------


def start_fetch(dest: Path, url: str) -> subprocess.Popen[str]:
    """A fetch in the background, returned once its temporary file exists (it is mid-transfer)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_API_"))}
    process = subprocess.Popen(
        [
            str(MODEL_API),
            "fetch",
            "--uri",
            url,
            "--sha256",
            DIGEST,
            "--dest",
            str(dest),
            "--allow-insecure-http",
        ],
        env={**environ, "MODEL_API_LOG_FORMAT": "json"},
        stderr=subprocess.DEVNULL,
        text=True,
    )
    waited = 0.0
    while not list(dest.glob(".model.onnx.*.part")) and process.poll() is None and waited < PROCESS_TIMEOUT:
        time.sleep(0.05)
        waited += 0.05
    assert process.poll() is None, f"fetch ended with {process.returncode} before its transfer started"
    return process


def test_sigterm_mid_transfer_leaves_no_temporary_file(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    process = start_fetch(tmp_path, flaky_http.add("/model.onnx", ARTIFACT, stall(after=4096)))

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=PROCESS_TIMEOUT) == 128 + signal.SIGTERM
    assert listing(tmp_path) == []


def test_a_sigkilled_runs_temporary_file_is_removed_by_the_next_run(
    flaky_http: FlakyHTTPServer, tmp_path: Path
) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT, stall(after=4096))
    process = start_fetch(tmp_path, url)
    process.kill()
    process.wait(timeout=PROCESS_TIMEOUT)
    abandoned = [name for name in listing(tmp_path) if name.endswith(".part")]

    rerun = fetch_to(tmp_path, url)

    assert (len(abandoned), rerun.code) == (1, 0), rerun.stderr
    assert listing(tmp_path) == ["model.onnx", "model.onnx.fetched.json"]


# --- 4: integrity ---------------------------------------------------------------------------------------


def test_digest_mismatch_exits_4_and_leaves_no_file(s3_server: S3Server, tmp_path: Path) -> None:
    uri = s3_server.put("mismatch/model.onnx", ARTIFACT)

    failed = fetch_to(tmp_path, uri, sha256=WRONG_DIGEST, env=s3_server.env())

    assert (failed.code, failed.outcome()["attempts"]) == (4, 1), failed.stderr
    assert DIGEST in failed.outcome()["message"]
    assert WRONG_DIGEST in failed.outcome()["message"]
    assert listing(tmp_path) == []  # no file under the final name, no temporary file, no marker


def test_size_over_the_limit_exits_4(flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    url = flaky_http.add("/model.onnx", ARTIFACT)

    failed = fetch_to(tmp_path, url, "--max-bytes", "1Mi")

    assert failed.code == 4, failed.stderr
    assert listing(tmp_path) == []


# --- credentials are never logged -----------------------------------------------------------------------


def test_credentials_never_logged(s3_server: S3Server, flaky_http: FlakyHTTPServer, tmp_path: Path) -> None:
    uri = s3_server.put("logged/model.onnx", ARTIFACT)
    wrong_secret = {**s3_server.env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789abcdef"}
    url = flaky_http.add("/model.onnx", ARTIFACT, status(500))
    runs = {
        "s3 ok": fetch_to(tmp_path / "a", uri, env=s3_server.env()),
        "s3 missing": fetch_to(tmp_path / "b", s3_server.uri("nope.onnx"), env=s3_server.env()),
        "s3 wrong secret": fetch_to(tmp_path / "c", uri, env=wrong_secret),
        "token in query": fetch_to(tmp_path / "d", url + "?X-Amz-Signature=tok3n", *FAST_RETRIES),
        "userinfo": fetch_to(tmp_path / "e", url.replace("http://", "http://user:hunter2-password@")),
    }
    codes = {name: run.code for name, run in runs.items()}
    assert codes == {"s3 ok": 0, "s3 missing": 3, "s3 wrong secret": 3, "token in query": 0, "userinfo": 2}

    secrets = [
        s3_server.secret_access_key,
        "wrong-secret",
        s3_server.access_key_id,
        "hunter2",
        "tok3n",
        "X-Amz-",
    ]
    leaked = {name: [s for s in secrets if s in run.stderr] for name, run in runs.items()}
    assert leaked == {name: [] for name in runs}
