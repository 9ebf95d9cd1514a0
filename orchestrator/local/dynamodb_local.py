"""DynamoDB Local (AWS's own engine, a Java program): find it, install it, start it.

It ships inside the npm package `amplify-dynamodb-simulator` (folder `emulator/`), which
the package registry serves; `install()` unpacks it into a cache folder once.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

NPM_PACKAGE = "amplify-dynamodb-simulator@2.9.30"


class DynamoDBLocalUnavailable(RuntimeError):
    """DynamoDB Local cannot be installed or started here (no Java, no npm, no files)."""


def home() -> Path:
    """Where the jar lives: $ORCHESTRATOR_DYNAMODB_LOCAL_DIR, else the user's cache folder."""
    configured = os.environ.get("ORCHESTRATOR_DYNAMODB_LOCAL_DIR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "orchestrator" / "dynamodb-local"


def java() -> str | None:
    return shutil.which("java")


def installed(directory: Path | None = None) -> bool:
    return ((directory or home()) / "DynamoDBLocal.jar").is_file()


def install(directory: Path | None = None) -> Path:
    """Unpack DynamoDB Local from the npm registry into `directory` (once)."""
    target = directory or home()
    if installed(target):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalUnavailable("npm is needed once to fetch DynamoDB Local")
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent"],
            cwd=scratch,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise DynamoDBLocalUnavailable(f"npm pack {NPM_PACKAGE} failed: {result.stderr[-500:]}")
        tarball = next(Path(scratch).glob("*.tgz"))
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="data")
        staging = Path(scratch) / "package" / "emulator"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(staging, partial)
        partial.replace(target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def end_process(process: subprocess.Popen[Any]) -> None:
    """Terminate a child process, killing it if it has not exited within 10 seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class DynamoDBLocal:
    """A running DynamoDB Local on loopback; in memory unless `db_path` is given."""

    def __init__(
        self, *, port: int | None = None, db_path: Path | None = None, directory: Path | None = None
    ) -> None:
        self.directory = directory or home()
        self.port = port or free_port()
        self.db_path = db_path
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> str:
        runtime = java()
        if runtime is None:
            raise DynamoDBLocalUnavailable("Java is not installed (DynamoDB Local needs it)")
        install(self.directory)
        storage = ["-dbPath", str(self.db_path)] if self.db_path else ["-inMemory"]
        if self.db_path:
            self.db_path.mkdir(parents=True, exist_ok=True)
        command = [
            runtime,
            "-Xmx512m",
            f"-Djava.library.path={self.directory / 'DynamoDBLocal_lib'}",
            "-jar",
            str(self.directory / "DynamoDBLocal.jar"),
            "-sharedDb",
            "-port",
            str(self.port),
            *storage,
        ]
        self._process = subprocess.Popen(
            command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready(timeout)
        return self.endpoint_url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise DynamoDBLocalUnavailable(
                    f"DynamoDB Local exited ({self._process.returncode})"
                )
            try:
                urllib.request.urlopen(self.endpoint_url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (400 to a bare GET): it is up
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise DynamoDBLocalUnavailable(f"DynamoDB Local did not start within {timeout:.0f}s")

    def stop(self) -> None:
        if self._process is not None:
            end_process(self._process)
            self._process = None

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
