"""The storage library under `model-api fetch` and `model-api batch`: URIs, S3 signing and configuration,
uploads, the atomic file and the retry policy."""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from model_api import storage
from model_api.s3 import S3Config, S3ConfigError, config_from_env, object_url, presign, presign_url
from model_api.storage import (
    AtomicFile,
    ConfigError,
    Deadline,
    IntegrityError,
    Limits,
    TransferError,
    parse_uri,
    redact,
    retrying,
    upload_file,
)

from tests.servers.s3_server import S3Server

# --- URIs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "scheme", "name", "display"),
    [
        ("https://models.example/iris/v2/model.onnx", "https", "model.onnx", None),
        (
            "https://models.example/a%20b.onnx?sig=x#f",
            "https",
            "a b.onnx",
            "https://models.example/a%20b.onnx?…",
        ),
        ("s3://bucket/deep/key/model.onnx", "s3", "model.onnx", None),
        ("file:///srv/models/model.onnx", "file", "model.onnx", None),
        ("/srv/models/model.onnx", "file", "model.onnx", None),
        ("relative/model.onnx", "file", "model.onnx", None),
    ],
)
def test_parse_uri_names_the_artifact(uri: str, scheme: str, name: str, display: str | None) -> None:
    location = parse_uri(uri)

    assert (location.scheme, location.name, location.display) == (scheme, name, display or uri)


def test_plain_http_needs_permission() -> None:
    with pytest.raises(ConfigError, match="--allow-insecure-http"):
        parse_uri("http://models.example/model.onnx")
    assert parse_uri("http://models.example/model.onnx", allow_insecure_http=True).remote


def test_credentials_in_a_url_are_refused_unshown() -> None:
    with pytest.raises(ConfigError, match="credentials in the URI") as refused:
        parse_uri("https://user:pa55word@models.example/model.onnx")
    assert "pa55word" not in str(refused.value)


def test_redact_keeps_plain_paths() -> None:
    assert redact("/srv/models/model.onnx") == "/srv/models/model.onnx"


def test_the_location_repr_hides_the_uri() -> None:
    assert "secret" not in repr(parse_uri("https://models.example/m.onnx?token=secret"))


# --- S3: the AWS worked example, configuration ----------------------------------------------------------


def test_presign_replays_the_aws_worked_example() -> None:
    # Amazon S3 API reference, "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)".
    url = presign_url(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        expires=86400,
        now=dt.datetime(2013, 5, 24, tzinfo=dt.UTC),
    )

    assert url.endswith("&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")


def test_presigned_url_is_accepted_by_a_real_s3_server(s3_server: S3Server) -> None:
    s3_server.put("signed/a b+c.bin", b"payload")
    config = config_from_env(s3_server.env())

    with urllib.request.urlopen(
        presign(config, "GET", s3_server.bucket, "signed/a b+c.bin"), timeout=30
    ) as answer:
        assert answer.read() == b"payload"


@pytest.mark.parametrize(
    ("endpoint", "bucket", "expected"),
    [
        ("https://minio.example:443", "models", "https://minio.example/models/k/m.onnx"),
        ("http://127.0.0.1:9000", "models", "http://127.0.0.1:9000/models/k/m.onnx"),
        (None, "models", "https://models.s3.eu-west-1.amazonaws.com/k/m.onnx"),
        (None, "my.models", "https://s3.eu-west-1.amazonaws.com/my.models/k/m.onnx"),
    ],
)
def test_object_url(endpoint: str | None, bucket: str, expected: str) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"}
    config = config_from_env(env | ({"AWS_ENDPOINT_URL": endpoint} if endpoint else {}))

    assert object_url(config, bucket, "k/m.onnx") == expected


def test_credentials_from_a_profile_in_the_shared_file(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = d\n"
        "[models]\naws_access_key_id = MODELSKEY\naws_secret_access_key = m\naws_session_token = t\n"
    )
    config_file = tmp_path / "config"
    config_file.write_text("[profile models]\nregion = ap-south-1\n")
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONFIG_FILE": str(config_file),
        "AWS_PROFILE": "models",
    }

    config = config_from_env(env)

    assert (config.access_key_id, config.secret_access_key, config.session_token, config.region) == (
        "MODELSKEY",
        "m",
        "t",
        "ap-south-1",
    )
    assert "MODELSKEY" not in repr(config)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "no S3 credentials"),
        ({"AWS_ACCESS_KEY_ID": "AKIA"}, "AWS_SECRET_ACCESS_KEY"),
        (
            {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": "minio:9000"},
            "ENDPOINT",
        ),
        (
            {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "s", "AWS_CA_BUNDLE": "/nonexistent.pem"},
            "CA_BUNDLE",
        ),
    ],
    ids=["nothing", "half", "endpoint-without-scheme", "missing-ca"],
)
def test_s3_configuration_errors_name_the_variable(env: dict[str, str], named: str, tmp_path: Path) -> None:
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        **env,
    }

    with pytest.raises(S3ConfigError, match=named):
        config_from_env(env)


# --- uploads: whole or not at all -----------------------------------------------------------------------


def test_upload_to_s3(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    part = tmp_path / "part-00000-of-00002.jsonl"
    part.write_bytes(b'{"row": 0}\n' * 10_000)

    size = upload_file(part, s3_server.uri("scores/part-00000-of-00002.jsonl"))

    assert size == part.stat().st_size
    assert s3_server.get("scores/part-00000-of-00002.jsonl") == part.read_bytes()


def test_an_upload_that_arrives_damaged_is_not_stored(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    part = tmp_path / "part.jsonl"
    part.write_bytes(b'{"row": 0}\n')
    monkeypatch.setattr(storage, "content_md5", lambda _: "1B2M2Y8AsgTpgAmY7PhCfg==")  # the MD5 of b""

    with pytest.raises(TransferError, match="BadDigest"):
        upload_file(part, s3_server.uri("damaged/part.jsonl"), limits=Limits(retries=0))
    assert not s3_server.exists("damaged/part.jsonl")


def test_upload_to_a_local_path(tmp_path: Path) -> None:
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"rows\n")
    out = tmp_path / "out"
    out.mkdir()

    upload_file(part, str(out / "part.jsonl"))

    assert [(p.name, p.read_bytes()) for p in out.iterdir()] == [("part.jsonl", b"rows\n")]


def test_upload_to_https_is_refused(tmp_path: Path) -> None:
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"rows\n")

    with pytest.raises(ConfigError, match="uploads go to s3:// or a local path"):
        upload_file(part, "https://models.example/part.jsonl")


def test_only_abandoned_temporary_files_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    abandoned = tmp_path / f"{storage.temp_prefix(target)}killed.part"  # no live writer holds its lock
    abandoned.write_bytes(b"half")

    with AtomicFile(target) as live:
        removed = storage.remove_abandoned(target)
        assert (removed, live.temp.exists()) == ([abandoned], True)


def test_atomic_file_leaves_nothing_when_not_committed(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), AtomicFile(target) as out:
        out.file.write(b"half")
        raise RuntimeError("killed halfway")

    assert list(tmp_path.iterdir()) == []


# --- retries: transient errors only, within the deadline ------------------------------------------------


def _failing(*errors: Exception) -> tuple[Callable[[int], str], list[int]]:
    """An attempt that raises `errors` in turn, then succeeds; and the attempt numbers it saw."""
    calls: list[int] = []

    def attempt(number: int) -> str:
        calls.append(number)
        if number <= len(errors):
            raise errors[number - 1]
        return "done"

    return attempt, calls


def test_transient_errors_are_retried() -> None:
    attempt, calls = _failing(TransferError("503", transient=True), TransferError("reset", transient=True))
    limits = Limits(retries=2, backoff=0.01)

    assert retrying(attempt, Deadline(60), limits, parse_uri("s3://b/k")) == ("done", 3)
    assert calls == [1, 2, 3]


@pytest.mark.parametrize(
    "error",
    [TransferError("404", transient=False), IntegrityError("digest"), ConfigError("no credentials")],
    ids=["permanent-transfer", "integrity", "config"],
)
def test_other_errors_are_not_retried(error: storage.StorageError) -> None:
    attempt, calls = _failing(error)

    with pytest.raises(type(error)):
        retrying(attempt, Deadline(60), Limits(retries=3, backoff=0.01), parse_uri("s3://b/k"))
    assert (calls, error.attempts) == ([1], 1)


def test_no_retry_is_started_that_the_deadline_cannot_hold() -> None:
    attempt, calls = _failing(TransferError("503", transient=True))

    with pytest.raises(TransferError, match="no time for another attempt"):
        retrying(attempt, Deadline(0.5), Limits(retries=3, backoff=10), parse_uri("s3://b/k"))
    assert calls == [1]


def test_s3_config_is_not_logged_by_repr() -> None:
    config = S3Config("AKIAVISIBLE", "hidden-secret", session_token="hidden-token")

    assert "hidden" not in repr(config)
    assert "AKIAVISIBLE" not in repr(config)
