"""A throwaway self-signed certificate for 127.0.0.1, made with the openssl command (Debian's
ca-certificates package depends on it), for the servers' https mode."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from loadtest.chart.localpod import LOOPBACK


@dataclass(frozen=True)
class Certificate:
    cert: Path  # also the CA bundle a client trusts it by (SSL_CERT_FILE, AWS_CA_BUNDLE)
    key: Path


def self_signed(directory: Path) -> Certificate:
    directory.mkdir(parents=True, exist_ok=True)
    certificate = Certificate(directory / "cert.pem", directory / "key.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(certificate.key), "-out", str(certificate.cert), "-days", "2",
            "-subj", f"/CN={LOOPBACK}", "-addext", f"subjectAltName=IP:{LOOPBACK}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return certificate
