"""Benchmark: `model-api fetch` of a 100 MB artifact from a local S3 server, against `cp` of the same file.

    python -m tests.bench.fetch_bench [--megabytes 100] [--rounds 3]

Each round, interleaved so that neighbours on a shared machine weigh on every contender alike:
`cp` of the file (page cache to page cache), `cp` followed by `sync` of the copy (the durability the
fetch pays for with its fsync), `model-api fetch` of a file:// URI (hashing, temporary file, fsync,
rename, marker: everything but the network), and `model-api fetch` of the s3:// URI from
`rclone serve s3` on loopback (the init container's path, process start included), and curl of the
same object from the same server (the transfer alone, where curl is installed). Medians are printed
with the ratios; nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from model_api.s3 import config_from_env, presign

from tests.bench.service_bench import cpu_model
from tests.servers.s3_server import RCLONE, S3Server

MODEL_API = Path(sys.executable).parent / "model-api"


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def run(*command: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command[:2]} exited {result.returncode}: {result.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    size = args.megabytes * 10**6

    with tempfile.TemporaryDirectory(prefix="fetch-bench-") as scratch:
        root = Path(scratch)
        source = root / "model.onnx"
        with source.open("wb") as out:
            for _ in range(args.megabytes):
                out.write(os.urandom(10**6))
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

        with S3Server(root / "s3") as s3:
            uri = s3.put("bench/model.onnx", source)
            s3_env = {**env, **s3.env()}

            def fresh(name: str) -> Path:
                target = root / "out" / name  # beside the S3 server's directory, never in it
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir(parents=True)
                return target

            def fetch(from_uri: str, dest: Path, environ: dict[str, str]) -> None:
                run(
                    str(MODEL_API),
                    "fetch",
                    "--uri",
                    from_uri,
                    "--sha256",
                    digest,
                    "--dest",
                    str(dest),
                    env=environ,
                )

            contenders: dict[str, Callable[[], object]] = {
                "cp": lambda: run("cp", str(source), str(fresh("cp") / "model.onnx")),
                "cp + sync": lambda: (
                    run("cp", str(source), str(fresh("sync") / "model.onnx")),
                    run("sync", str(root / "out" / "sync" / "model.onnx")),
                ),
                "fetch file://": lambda: fetch(source.as_uri(), fresh("file"), env),
                "fetch s3:// (rclone, loopback)": lambda: fetch(uri, fresh("s3"), s3_env),
            }
            curl = shutil.which("curl")
            if curl:  # the same object from the same server with no hashing, fsync or checks
                presigned = presign(
                    config_from_env(s3.env()), "GET", s3.bucket, "bench/model.onnx", expires=3600
                )
                contenders["curl of the s3 object (presigned)"] = lambda: run(
                    curl, "-sfo", str(fresh("curl") / "model.onnx"), presigned
                )
            seconds: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(args.rounds):
                for name, action in contenders.items():
                    seconds[name].append(timed(action))
            assert hashlib.sha256((root / "out" / "s3" / "model.onnx").read_bytes()).hexdigest() == digest
        hash_seconds = timed(lambda: hashlib.sha256(source.read_bytes()))

    rclone = subprocess.run([str(RCLONE), "version"], capture_output=True, text=True).stdout.split("\n", 1)[0]
    median = {name: statistics.median(values) for name, values in seconds.items()}
    cp = median["cp"]
    print()
    print(f"## Fetch benchmark ({args.megabytes} MB artifact, median of {args.rounds} interleaved rounds)")
    print()
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · {cpu_model()} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · {rclone} · sha256 alone {size / hash_seconds / 1e6:.0f} MB/s"
    )
    print()
    curl_name = "curl of the s3 object (presigned)"
    print("| copy | median s | MB/s | throughput vs cp | vs cp + sync | vs curl from the same server |")
    print("|---|---|---|---|---|---|")
    for name, value in median.items():
        versus_curl = f"{median[curl_name] / value:.2f}x" if curl_name in median else "no curl"
        print(
            f"| {name} | {value:.3f} | {size / value / 1e6:.0f} | {cp / value:.2f}x "
            f"| {median['cp + sync'] / value:.2f}x | {versus_curl} |"
        )
    print()
    print(
        "fetch includes process start (about 0.07 s), hashing, fsync, rename and the marker; cp and curl "
        "neither hash nor fsync, so the curl column is what verification costs on the S3 path."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
