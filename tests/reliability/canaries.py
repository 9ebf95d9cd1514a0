"""Secret canaries: every artifact credential a test session hands out must never come back.

The session registers as a canary every `artifactCredentials` value the CodePipeline
emulator puts into an event (random per job, see `emulator.fake_credentials`), the
documented keys of the event fixture, and the secret access key and session token of every
role assumed through moto's STS (the credentials a cross-account step acts with, see
`orchestrator.assume`), and scans everything the orchestrator could leak them into:

    log records      every record of every logger, formatted with its extra fields and its
                     exception (the root logger is set to DEBUG; wire-level libraries that
                     log our own request signatures, like botocore, stay at INFO)
    metrics          every EMF line `orchestrator.metrics.Metrics` emits
    CodePipeline     every request body a `CodePipelineEmulator` receives
    DynamoDB         every item of every table of every DynamoDB Local, just before it stops
    CLI output       every `CliRunner.invoke` result
    captured output  the stdout, stderr and log text pytest captured for every test

A text is scanned as it is produced: a canary is registered when its job is created,
before any code can see it. The most recent texts are also kept (bounded, `RETAINED_CHARS`)
and scanned again at the end against every canary. A leak fails the session
(`session.exitstatus = 1`) and is reported by place, never by value.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

WINDOW = 16
"""Canaries shorter than this are not registered (too likely to occur by chance)."""
MIN_DISTINCT = 8
RETAINED_CHARS = 8_000_000
MAX_REPORTED = 20
WIRE_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "moto", "werkzeug")
"""Libraries that log request signatures and headers at DEBUG: the job's keys legitimately
sign requests to S3, and production never turns these loggers to DEBUG."""

# The characters random keys and tokens are made of (base64, base64url): a leaked canary is
# inside a run of them, so only such runs are searched.
_ALPHABET = "A-Za-z0-9+/=_\\-"
_RUN = re.compile(f"[{_ALPHABET}]{{{WINDOW},}}")
_IN_ALPHABET = re.compile(f"[{_ALPHABET}]+")


@dataclass(frozen=True)
class Leak:
    """A canary found in a text: where, whose, and a masked hint of which."""

    where: str
    origin: str
    hint: str


class Scanner:
    """Canaries and the texts searched for them. Thread-safe; memory is bounded by the
    canaries (three per job) and `retained_chars`."""

    def __init__(self, retained_chars: int = RETAINED_CHARS) -> None:
        self._lock = threading.Lock()
        self._origins: dict[str, str] = {}
        self._by_prefix: dict[str, list[str]] = {}
        self._odd: list[str] = []  # canaries with characters outside the alphabet
        self._retained: deque[tuple[str, str]] = deque()
        self._retained_chars = 0
        self._budget = retained_chars
        self._seen: set[tuple[str, str]] = set()
        self.leaks: list[Leak] = []
        self.leak_count = 0
        self.places: Counter[str] = Counter()  # leaks per kind of place
        self.texts = 0
        self.chars = 0
        self.problems: list[str] = []

    # -- canaries ----------------------------------------------------------------------

    def add(self, value: str, origin: str) -> None:
        """Register one secret value (ignored when shorter than WINDOW or made of fewer than
        MIN_DISTINCT characters: such a value may occur anywhere by chance)."""
        if len(value) < WINDOW or len(set(value)) < MIN_DISTINCT:
            return
        with self._lock:
            if value in self._origins:
                return
            self._origins[value] = origin
            if _IN_ALPHABET.fullmatch(value):
                self._by_prefix.setdefault(value[:WINDOW], []).append(value)
            else:
                self._odd.append(value)

    def add_credentials(self, credentials: object, origin: str) -> None:
        """Register every string value of an artifactCredentials object."""
        if isinstance(credentials, dict):
            for value in credentials.values():
                if isinstance(value, str):
                    self.add(value, origin)

    def knows(self, value: str) -> bool:
        with self._lock:
            return value in self._origins

    @property
    def canaries(self) -> int:
        with self._lock:
            return len(self._origins)

    # -- texts -------------------------------------------------------------------------

    def scan(self, text: str, where: str, *, retain: bool = True) -> None:
        """Search one text now; keep it (bounded) for the final pass."""
        found = self._search(text)
        with self._lock:
            self.texts += 1
            self.chars += len(text)
            if retain and text:
                self._retained.append((where, text))
                self._retained_chars += len(text)
                while self._retained_chars > self._budget and self._retained:
                    _, dropped = self._retained.popleft()
                    self._retained_chars -= len(dropped)
        for value in found:
            self._record(value, where)

    def rescan(self) -> None:
        """Search the retained texts again, against every canary registered by now."""
        with self._lock:
            retained = list(self._retained)
        for where, text in retained:
            for value in self._search(text):
                self._record(value, where)

    def _search(self, text: str) -> list[str]:
        found: list[str] = []
        by_prefix = self._by_prefix
        if by_prefix:
            for match in _RUN.finditer(text):
                run = match.group()
                for i in range(len(run) - WINDOW + 1):
                    candidates = by_prefix.get(run[i : i + WINDOW])
                    if candidates:
                        found.extend(c for c in candidates if run.startswith(c, i))
        found.extend(value for value in list(self._odd) if value in text)
        return found

    def _record(self, value: str, where: str) -> None:
        with self._lock:
            origin = self._origins.get(value, "?")
            if (value, where) in self._seen:
                return
            self._seen.add((value, where))
            self.leak_count += 1
            self.places[where.split(" of ", maxsplit=1)[0]] += 1
            if len(self.leaks) < MAX_REPORTED:
                hint = f"{value[:4]}... ({len(value)} characters)"
                self.leaks.append(Leak(where, origin, hint))


SCANNER = Scanner()
"""The session's scanner (installed by tests/conftest.py)."""


# region the session's sources


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _LineFormatter(logging.Formatter):
    """Message, every extra field and the exception: everything a log line could carry."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the arguments
            message = f"{record.msg!r} % {record.args!r}"
        parts = [record.name, record.levelname, message]
        parts += [f"{k}={v!r}" for k, v in vars(record).items() if k not in _STANDARD]
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(self.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        return " ".join(parts)


class _ScanningHandler(logging.Handler):
    def __init__(self, scanner: Scanner, skip_orchestrator: bool) -> None:
        super().__init__(logging.DEBUG)
        self._scanner = scanner
        self._skip = skip_orchestrator
        self.setFormatter(_LineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if self._skip and (name == "orchestrator" or name.startswith("orchestrator.")):
            return  # seen by the handler on the `orchestrator` logger already
        self._scanner.scan(self.format(record), f"a log record of logger {name!r}")


def scan_dynamodb(endpoint_url: str, scanner: Scanner) -> None:
    """Scan every item of every table of a running DynamoDB Local."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="canaryscan",
        aws_secret_access_key="canaryscan",
        config=Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=60),
    )
    try:
        tables = [
            name
            for page in client.get_paginator("list_tables").paginate()
            for name in page["TableNames"]
        ]
    except EndpointConnectionError:
        return  # never started, or already gone: nothing to scan
    except (BotoCoreError, ClientError) as exc:
        scanner.problems.append(f"DynamoDB Local at {endpoint_url}: {type(exc).__name__}")
        return
    for table in tables:
        try:
            for page in client.get_paginator("scan").paginate(TableName=table):
                scanner.scan(
                    json.dumps(page["Items"]), f"an item of DynamoDB table {table}", retain=False
                )
        except (BotoCoreError, ClientError) as exc:
            scanner.problems.append(f"table {table}: {type(exc).__name__}")


class Session:
    """Wires the scanner into a pytest session (install at configure, finish at the end)."""

    def __init__(self, scanner: Scanner = SCANNER) -> None:
        self.scanner = scanner
        self._patches: pytest.MonkeyPatch | None = None
        self._handlers: list[tuple[logging.Logger, logging.Handler]] = []
        self._levels: dict[str, int] = {}

    def install(self) -> None:
        import pytest

        from tests.events import load_event

        fixture = load_event()["CodePipeline.job"]["data"]["artifactCredentials"]
        self.scanner.add_credentials(fixture, "tests/events/job.json")
        self._patches = pytest.MonkeyPatch()
        self._patch_codepipeline(self._patches)
        self._patch_sts(self._patches)
        self._patch_outputs(self._patches)
        self._install_logging()

    def _patch_codepipeline(self, patches: pytest.MonkeyPatch) -> None:
        """Every emulator job's credentials become canaries; every request is scanned."""
        from orchestrator.local.emulator import CodePipelineEmulator

        scanner = self.scanner
        create_job = CodePipelineEmulator.create_job
        handle = CodePipelineEmulator.handle

        def registering_create_job(
            emulator: CodePipelineEmulator, *args: Any, **kwargs: Any
        ) -> Any:
            record = create_job(emulator, *args, **kwargs)
            data = record.event["CodePipeline.job"]["data"]
            scanner.add_credentials(data.get("artifactCredentials"), f"job {record.job_id}")
            return record

        def scanning_handle(
            emulator: CodePipelineEmulator, path: str, headers: dict[str, str], body: bytes
        ) -> tuple[int, dict[str, Any]]:
            text = body.decode("utf-8", errors="replace")
            scanner.scan(text, "a request to the CodePipeline emulator")
            return handle(emulator, path, headers, body)

        patches.setattr(CodePipelineEmulator, "create_job", registering_create_job)
        patches.setattr(CodePipelineEmulator, "handle", scanning_handle)

    def _patch_sts(self, patches: pytest.MonkeyPatch) -> None:
        """Every role moto's STS hands out: its secret key and session token are canaries
        before the caller reads the response (the access key id is no secret: it is in every
        request's Authorization header, as on AWS)."""
        from moto.sts.models import STSBackend

        scanner = self.scanner
        assume_role = STSBackend.assume_role

        def registering_assume_role(backend: STSBackend, *args: Any, **kwargs: Any) -> Any:
            role = assume_role(backend, *args, **kwargs)
            origin = f"an assumed role ({role.arn})"
            scanner.add(role.secret_access_key, origin)
            scanner.add(role.session_token, origin)
            return role

        patches.setattr(STSBackend, "assume_role", registering_assume_role)

    def _patch_outputs(self, patches: pytest.MonkeyPatch) -> None:
        """CLI outputs, EMF lines, and DynamoDB Local's tables before it stops."""
        from click.testing import CliRunner

        from orchestrator.local.dynamodb_local import DynamoDBLocal
        from orchestrator.metrics import Metrics

        scanner = self.scanner
        stop = DynamoDBLocal.stop
        emit = Metrics.emit

        def scanning(invoke: Any) -> Any:
            def scanning_invoke(runner: CliRunner, *args: Any, **kwargs: Any) -> Any:
                result = invoke(runner, *args, **kwargs)
                scanner.scan(result.output, "the output of a CLI command")
                return result

            return scanning_invoke

        def scanning_stop(server: DynamoDBLocal) -> None:
            scan_dynamodb(server.endpoint_url, scanner)
            stop(server)

        def scanning_emit(
            metrics: Metrics, values: dict[str, float], properties: dict[str, str] | None = None
        ) -> None:
            scanner.scan(json.dumps([values, properties]), "an EMF metrics line")
            emit(metrics, values, properties)

        patches.setattr(CliRunner, "invoke", scanning(CliRunner.invoke))
        try:  # typer's runner has its own invoke (it does not call click's)
            from typer.testing import CliRunner as TyperRunner
        except ImportError:  # pragma: no cover - typer comes with the cli extra
            pass
        else:
            patches.setattr(TyperRunner, "invoke", scanning(TyperRunner.invoke))
        patches.setattr(DynamoDBLocal, "stop", scanning_stop)
        patches.setattr(Metrics, "emit", scanning_emit)

    def _install_logging(self) -> None:
        root = logging.getLogger()
        for logger, skip in ((root, True), (logging.getLogger("orchestrator"), False)):
            log_handler = _ScanningHandler(self.scanner, skip_orchestrator=skip)
            logger.addHandler(log_handler)
            self._handlers.append((logger, log_handler))
        self._levels[""] = root.level
        root.setLevel(logging.DEBUG)
        for name in WIRE_LOGGERS:
            self._levels[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(logging.INFO)

    def uninstall(self) -> None:
        for logger, log_handler in self._handlers:
            logger.removeHandler(log_handler)
        self._handlers.clear()
        for name, level in self._levels.items():
            logging.getLogger(name or None).setLevel(level)
        if self._patches is not None:
            self._patches.undo()
            self._patches = None

    def scan_report(self, report: pytest.TestReport) -> None:
        for title, text in report.sections:
            if not title.startswith("Captured log"):  # log records were scanned as emitted
                self.scanner.scan(text, f"{title} of {report.nodeid}")

    def finish(self, session: pytest.Session) -> None:
        """Final pass; a leak fails the session."""
        import pytest

        self.scanner.rescan()
        if self.scanner.leak_count:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def summary(self) -> list[str]:
        scanner = self.scanner
        lines = [
            f"secret canaries: {scanner.canaries} registered, {scanner.texts} texts "
            f"({scanner.chars / 1e6:.1f} MB) scanned, {scanner.leak_count} leaks"
        ]
        lines += [f"LEAKED {n} times into {place}" for place, n in scanner.places.most_common()]
        lines += [
            f"LEAKED: a canary of {leak.origin} ({leak.hint}) in {leak.where}"
            for leak in scanner.leaks
        ]
        lines += [f"not scanned: {problem}" for problem in scanner.problems]
        return lines


SESSION = Session()

# endregion
