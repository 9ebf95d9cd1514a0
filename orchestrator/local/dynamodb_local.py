"""DynamoDB Local (AWS's own engine, a Java program): find it, install it, start it.

It ships inside the npm package `amplify-dynamodb-simulator` (folder `emulator/`), which
the package registry serves; `install()` unpacks it into a cache folder once.

`shared()` is the CLI's server for a data folder: started once, detached (its own session,
so it outlives the command and a Ctrl-C at the terminal), recorded in
`<data>/dynamodb-local.json` (pid, port, data path), and reused by later commands while
that pid is alive, is DynamoDB Local on that port and data path, and answers. A stale
record is removed and a new server started; `stop_shared()` ends it (`orchestrator local
stop`). A pid whose command line is not ours is never signalled nor connected to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

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
    # a long step, once: say so first (stderr, so that `run --json` stays JSON on stdout)
    print(
        f"fetching DynamoDB Local (npm {NPM_PACKAGE}, about 64 MB, once) into {target}",
        file=sys.stderr,
        flush=True,
    )
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


# region the shared server of a data folder

RECORD_NAME = "dynamodb-local.json"
_LOCK_NAME = "dynamodb-local.lock"
_LOG_NAME = "dynamodb-local.log"


@dataclass(frozen=True)
class SharedServer:
    """What `<data>/dynamodb-local.json` records about the data folder's server."""

    pid: int
    port: int
    db_path: str
    started_at: float
    tables: tuple[str, ...] = ()
    """Tables this server was seen to have (created if missing): not checked again."""

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _db_path(data_dir: Path) -> Path:
    return (data_dir / "dynamodb").resolve()


def read_record(data_dir: Path) -> SharedServer | None:
    """The recorded server, or None (no record, or one that does not parse)."""
    try:
        raw = json.loads((data_dir / RECORD_NAME).read_text())
        return SharedServer(
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            db_path=str(raw["db_path"]),
            started_at=float(raw["started_at"]),
            tables=tuple(str(t) for t in raw.get("tables", ())),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_record(data_dir: Path, server: SharedServer) -> None:
    partial = data_dir / (RECORD_NAME + ".partial")
    partial.write_text(json.dumps(asdict(server), indent=2) + "\n")
    partial.replace(data_dir / RECORD_NAME)


def _remove_record(data_dir: Path) -> None:
    (data_dir / RECORD_NAME).unlink(missing_ok=True)


def _command_line(pid: int) -> list[str] | None:
    """The process's arguments; None when it is gone (or a zombie: no arguments left)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self/cmdline").exists():
        try:
            args = proc.read_bytes().split(b"\0")
        except OSError:
            return None
        found = [a.decode(errors="replace") for a in args if a]
        return found or None
    try:  # no /proc (macOS): ps prints the command line, space-separated
        result = subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = result.stdout.strip()
    return text.split() if result.returncode == 0 and text else None


def is_ours(server: SharedServer) -> bool:
    """The recorded pid runs DynamoDB Local on the recorded port and data path."""
    args = _command_line(server.pid)
    if not args:
        return False
    joined = " ".join(args)

    def follows(flag: str, value: str) -> bool:
        return any(a == flag and b == value for a, b in itertools.pairwise(args))

    return (
        "DynamoDBLocal.jar" in joined
        and follows("-port", str(server.port))
        and (follows("-dbPath", server.db_path) or f"-dbPath {server.db_path}" in joined)
    )


def answers(endpoint_url: str, timeout: float = 1.0) -> bool:
    """Something answers HTTP there (DynamoDB Local says 400 to a bare GET)."""
    try:
        urllib.request.urlopen(endpoint_url, timeout=timeout).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One command at a time decides about the data folder's server (released on exit,
    even a killed one's)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / _LOCK_NAME).open("a") as handle:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def _signal_and_wait(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone. Reaps it
    when it is our child (a test that started it in-process)."""
    import signal

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if _command_line(pid) is None:
                return
            time.sleep(0.05)


def _spawn_detached(command: list[str], cwd: Path, log: Path) -> int:
    """Start `command` outside this process's session and as no child of it (a shell
    starts it in the background and exits); its pid."""
    script = 'log="$1"; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'
    launcher = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(log), *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
        timeout=30,
    )
    return int(launcher.stdout.strip())


def shared(data_dir: Path, *, directory: Path | None = None, timeout: float = 60.0) -> SharedServer:
    """The data folder's DynamoDB Local: the recorded one when it is ours and answers, else
    a new one, started detached and recorded."""
    with _locked(data_dir):
        recorded = read_record(data_dir)
        if recorded is not None:
            if is_ours(recorded):
                if _wait_answering(recorded, timeout):  # it may have been killed mid-start
                    return recorded
                _signal_and_wait(recorded.pid)  # ours but mute: replace it
            _remove_record(data_dir)
        return _start_shared(data_dir, directory or home(), timeout)


def _wait_answering(server: SharedServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if answers(server.endpoint_url):
            return True
        if time.monotonic() >= deadline or not is_ours(server):
            return False
        time.sleep(0.2)


def _start_shared(data_dir: Path, directory: Path, timeout: float) -> SharedServer:
    runtime = java()
    if runtime is None:
        raise DynamoDBLocalUnavailable("Java is not installed (DynamoDB Local needs it)")
    install(directory)
    db_path = _db_path(data_dir)
    db_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        runtime,
        "-Xmx512m",
        f"-Djava.library.path={directory / 'DynamoDBLocal_lib'}",
        "-jar",
        str(directory / "DynamoDBLocal.jar"),
        "-sharedDb",
        "-port",
        str(port),
        "-dbPath",
        str(db_path),
    ]
    pid = _spawn_detached(command, directory, (data_dir / _LOG_NAME).resolve())
    server = SharedServer(pid=pid, port=port, db_path=str(db_path), started_at=time.time())
    try:
        _write_record(data_dir, server)  # before it answers: a command killed now leaves
        deadline = time.monotonic() + timeout  # a record, not an unknown server
        while not answers(server.endpoint_url):
            if _command_line(pid) is None:
                raise DynamoDBLocalUnavailable(
                    f"DynamoDB Local exited (see {data_dir / _LOG_NAME})"
                )
            if time.monotonic() >= deadline:
                raise DynamoDBLocalUnavailable(
                    f"DynamoDB Local did not start within {timeout:.0f}s"
                )
            time.sleep(0.1)
        if not is_ours(server):
            raise DynamoDBLocalUnavailable(f"port {port} was taken by another program")
    except BaseException:
        if is_ours(server):
            _signal_and_wait(pid)
        _remove_record(data_dir)
        raise
    return server


def note_table(data_dir: Path, server: SharedServer, table: str) -> None:
    """Record that `server` has `table`, so later commands need not check it again."""
    with _locked(data_dir):
        recorded = read_record(data_dir)
        if recorded is not None and recorded.pid == server.pid and table not in recorded.tables:
            tables = (*recorded.tables, table)
            _write_record(data_dir, dataclasses.replace(recorded, tables=tables))


def shared_status(data_dir: Path) -> SharedServer | None:
    """The data folder's server when it runs (ours, answering); a stale record is removed."""
    if not (data_dir / RECORD_NAME).exists():  # nothing to tell: create no folder
        return None
    with _locked(data_dir):
        recorded = read_record(data_dir)
        if recorded is None:
            return None
        if is_ours(recorded) and answers(recorded.endpoint_url):
            return recorded
        if not is_ours(recorded):
            _remove_record(data_dir)
        return None


def stop_shared(data_dir: Path) -> SharedServer | None:
    """End the data folder's server (only if the recorded pid is ours) and remove its
    record; the server that was stopped, or None."""
    if not (data_dir / RECORD_NAME).exists():  # nothing to tell: create no folder
        return None
    with _locked(data_dir):
        recorded = read_record(data_dir)
        if recorded is None:
            return None
        stopped = None
        if is_ours(recorded):
            _signal_and_wait(recorded.pid)
            stopped = recorded
        _remove_record(data_dir)
        return stopped


# endregion
