"""S3 without an SDK: credentials, region and endpoint from the standard AWS variables and files, and
presigned URLs (Signature Version 4, query-string form) that the storage module fetches or uploads to.

Why not boto3/botocore: every botocore release requires python-dateutil < 3 while the toolkit's
kubernetes client requires >= 3, so both cannot share one environment; and the transfer itself must go
through the storage module's one HTTP path (same timeouts, deadline and retries for every scheme).
Signing is the small, fully specified part we need: "Authenticating Requests: Using Query Parameters
(AWS Signature Version 4)" in the Amazon S3 API reference, whose worked example the tests replay.

Sources, in the order the AWS SDKs and CLI use them:
  credentials  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else the profile
               AWS_PROFILE (default "default") in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials),
               else in AWS_CONFIG_FILE (~/.aws/config)
  region       AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`, else us-east-1
  endpoint     AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL (any S3-compatible server: path-style requests),
               else Amazon S3 (virtual-hosted requests)
  CA bundle    AWS_CA_BUNDLE
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_REGION = "us-east-1"
MAX_EXPIRES_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


class S3ConfigError(ValueError):
    """The S3 configuration in the environment is missing or unusable; the message names the variable."""


@dataclass(frozen=True)
class S3Config:
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None  # scheme://host[:port] of an S3-compatible server; None: Amazon S3
    ca_bundle: str | None = None


def config_from_env(environ: Mapping[str, str] | None = None) -> S3Config:
    """Resolve credentials, region, endpoint and CA bundle as the AWS CLI would (see the module doc)."""
    env = os.environ if environ is None else environ
    profile = env.get("AWS_PROFILE") or "default"
    credentials_file = _ini(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", profile)
    config_file = _ini(env.get("AWS_CONFIG_FILE") or "~/.aws/config", profile, config=True)

    key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    token = env.get("AWS_SESSION_TOKEN") or None
    if bool(key_id) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        raise S3ConfigError(f"{missing} is unset while its partner is set: set both or neither")
    if not key_id:
        for section in (credentials_file, config_file):
            if section.get("aws_access_key_id") and section.get("aws_secret_access_key"):
                key_id, secret = section["aws_access_key_id"], section["aws_secret_access_key"]
                token = section.get("aws_session_token") or None
                break
    if not key_id or not secret:
        raise S3ConfigError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in "
            "AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials)"
        )

    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or config_file.get("region")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    ca_bundle = env.get("AWS_CA_BUNDLE") or None
    if ca_bundle and not Path(ca_bundle).is_file():
        raise S3ConfigError(f"AWS_CA_BUNDLE={ca_bundle} is not a readable file")
    return S3Config(
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=token,
        region=region or DEFAULT_REGION,
        endpoint_url=_endpoint(endpoint) if endpoint else None,
        ca_bundle=ca_bundle,
    )


def object_url(config: S3Config, bucket: str, key: str) -> str:
    """The unsigned URL of an object: path-style on a custom endpoint, virtual-hosted on Amazon S3."""
    path = quote(key, safe="/~")
    if config.endpoint_url:
        return f"{config.endpoint_url}/{bucket}/{path}"
    if "." in bucket:  # a dotted bucket breaks the wildcard TLS certificate of virtual-hosted names
        return f"https://s3.{config.region}.amazonaws.com/{bucket}/{path}"
    return f"https://{bucket}.s3.{config.region}.amazonaws.com/{path}"


def presign(
    config: S3Config,
    method: str,
    bucket: str,
    key: str,
    *,
    expires: int = 3600,
    now: dt.datetime | None = None,
) -> str:
    """A URL that performs `method` on the object for `expires` seconds, without further credentials."""
    return presign_url(
        method,
        object_url(config, bucket, key),
        access_key_id=config.access_key_id,
        secret_access_key=config.secret_access_key,
        session_token=config.session_token,
        region=config.region,
        expires=expires,
        now=now,
    )


def presign_url(
    method: str,
    url: str,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    region: str = DEFAULT_REGION,
    expires: int = 3600,
    now: dt.datetime | None = None,
) -> str:
    """SigV4 query-string signing of an unsigned S3 URL (host the only signed header, payload unsigned)."""
    if not 1 <= expires <= MAX_EXPIRES_SECONDS:
        raise S3ConfigError(f"a presigned URL lives 1 to {MAX_EXPIRES_SECONDS} seconds, not {expires}")
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    stamp, day = moment.strftime("%Y%m%dT%H%M%SZ"), moment.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    parts = urlsplit(url)
    params = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key_id}/{scope}",
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
    }
    if session_token:
        params["X-Amz-Security-Token"] = session_token
    query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))
    canonical_request = "\n".join(
        [method, parts.path or "/", query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret_access_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}?{query}&X-Amz-Signature={signature}"


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _endpoint(value: str) -> str:
    """scheme://host[:port], a default port dropped: the Host header http.client sends is what is signed."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise S3ConfigError(f"AWS_ENDPOINT_URL={value!r} is not an http(s)://host[:port] URL")
    if parts.username or parts.password or parts.query or parts.path not in ("", "/"):
        raise S3ConfigError("AWS_ENDPOINT_URL must be scheme://host[:port] only (no credentials or path)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError as error:
        raise S3ConfigError(f"AWS_ENDPOINT_URL has a bad port: {error}") from None
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")


def _ini(path: str, profile: str, *, config: bool = False) -> dict[str, str]:
    """One profile's keys from an AWS ini file; the config file names profiles `[profile NAME]`."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(os.path.expanduser(path))
    except configparser.Error as error:
        raise S3ConfigError(f"{path} is not a valid AWS ini file: {error.__class__.__name__}") from None
    section = f"profile {profile}" if config and profile != "default" else profile
    return dict(parser.items(section)) if parser.has_section(section) else {}
