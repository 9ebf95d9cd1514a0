"""Input and output artifacts: the JobContext part that reads and writes the action's zips.

    gather()  once per run, only if the definition reads `artifacts.`: download the named
              input artifacts with the job's artifactCredentials, keep the named files
              (JSON parsed, text as strings) as the run-context document `artifacts`,
              persisted with the run (at most `max_kept_bytes`)
    finish()  after the run succeeded: write a zip into each output artifact (SSE-KMS with
              the job's encryptionKey when there is one); same run, same bytes

Every S3 client is built from the job's own credentials, which rotate between jobs: no
client outlives its job, and the function's role is never used for artifacts. Errors name
the artifact, bucket and key, never a credential: access denied is a `PermissionError`,
bad content (not a zip, missing file, not JSON, too big) a `JobFailed`, a definition that
names artifacts the action lacks a `ConfigurationError`; S3 faults are retried next tick.
"""

from __future__ import annotations

import io
import json
import logging
import re
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError

from orchestrator import artifacts_report as pure
from orchestrator import aws
from orchestrator.engine import run_context
from orchestrator.exceptions import FailureType, GateFailed, OrchestratorError, TransientError

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.definition import GateDefinition
    from orchestrator.event import Artifact, ArtifactCredentials, Job
    from orchestrator.model import RunState

log = logging.getLogger("orchestrator")

_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)
_KEYS_IN_HEADERS = re.compile(
    r"(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?|Credential=)[^'\",\s/]+", re.I
)


class _HideKeys(logging.Filter):
    """botocore's DEBUG lines show request headers: the session token, the access key id."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "security-token" in text.lower() or "Credential=" in text:
            record.msg, record.args = _KEYS_IN_HEADERS.sub(r"\1<redacted>", text), None
        return True


def hide_keys_in_botocore_logs() -> None:
    """Redact job keys in the botocore loggers that print requests (idempotent)."""
    for name in ("botocore.endpoint", "botocore.auth"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideKeys) for f in logger.filters):
            logger.addFilter(_HideKeys())


class ArtifactStoreUnavailable(TransientError):
    """S3 could not be reached or was busy; the tick tries again at the next job."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what reading an input artifact may cost (memory, CPU, the run's item)."""

    max_download_bytes: int = 20 * 1024 * 1024
    max_entries: int = 10_000
    max_file_bytes: int = 1024 * 1024
    max_kept_bytes: int = 64 * 1024


class S3Objects(Protocol):
    """The two S3 calls artifacts need (a boto3 S3 client has them)."""

    def get_object(self, *, Bucket: str, Key: str) -> Any: ...

    def put_object(self, **params: Any) -> Any: ...


class ArtifactContext:
    """JobContext part for input and output artifacts. Holds no credentials or clients."""

    def __init__(
        self,
        region: str | None = None,
        *,
        limits: Limits | None = None,
        client_factory: Callable[[ArtifactCredentials], S3Objects] | None = None,
    ) -> None:
        self._region = region
        self._limits = limits or Limits()
        self._factory = client_factory or self._boto3_client
        self._session: Any = None
        self._lock = threading.Lock()
        hide_keys_in_botocore_logs()

    def gather(self, job: Job, definition: GateDefinition, state: RunState) -> dict[str, Any]:
        pure.check_outputs(job, definition)
        if "artifacts" in state.context:
            return {}  # read by an earlier tick of this run
        wanted = pure.references(definition)
        if not wanted:
            return {}
        inputs = {a.name: a for a in job.data.input_artifacts}
        names = pure.input_names(job, wanted)
        if not names:
            return {"artifacts": {}}
        client = self._client(job, f"read input artifact {names[0]!r}")
        kept: dict[str, Any] = {}
        budget = _Budget(self._limits.max_kept_bytes)
        for name in names:
            files = None if wanted.everything else wanted.files[name]
            data = _download(client, inputs[name], self._limits)
            kept[name] = _read_zip(data, inputs[name], files, self._limits, budget)
        log.info("input artifacts read", extra={"artifacts": names, "kept_bytes": budget.used})
        return {"artifacts": kept}

    def identify(self, job: Job) -> dict[str, Any] | None:
        return None

    def finish(self, job: Job, definition: GateDefinition, state: RunState) -> None:
        if not job.data.output_artifacts:
            return
        context = run_context(definition, state)
        key = job.data.encryption_key
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key.id} if key else {}
        when = state.ended_at if state.ended_at is not None else state.started_at
        client = self._client(job, f"write output artifact {job.data.output_artifacts[0].name!r}")
        for artifact in job.data.output_artifacts:
            spec = definition.artifacts.get(artifact.name)
            files = spec.files if spec else pure.DEFAULT_FILES
            body = pure.build_zip(pure.render_files(artifact.name, files, context, state), when)
            loc = artifact.location.s3_location
            params = {"Bucket": loc.bucket_name, "Key": loc.object_key, **extra}
            try:  # the same key every time: a repeated finish overwrites it with the same bytes
                client.put_object(Body=body, ContentType="application/zip", **params)
            except (ClientError, BotoCoreError, OSError) as exc:
                doing = f"writing output artifact {artifact.name!r} to"
                raise _s3_error(exc, doing, _where(artifact)) from exc
            log.info("output artifact written", extra={"artifact": artifact.name})

    def read_file(self, job: Job, name: str, path: str, max_bytes: int) -> tuple[bytes, str | None]:
        """One file of one input artifact, as bytes, and the artifact's revision.

        GateFailed names the artifact and the file when either is missing or too big;
        ArtifactStoreUnavailable when S3 is busy or unreachable."""
        inputs = {a.name: a for a in job.data.input_artifacts}
        if name not in inputs:
            present = ", ".join(sorted(inputs)) or "none"
            raise GateFailed(
                f"the action has no input artifact {name!r} (its input artifacts: {present})",
                FailureType.CONFIGURATION_ERROR,
            )
        artifact = inputs[name]
        client = self._client(job, f"read input artifact {name!r}")
        data = _download(client, artifact, self._limits)
        what = f"input artifact {name!r}"
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                try:
                    entry = archive.getinfo(path)
                except KeyError:
                    files = sorted(i.filename for i in archive.infolist() if not i.is_dir())
                    listing = ", ".join(files[:10]) or "no files"
                    more = f" and {len(files) - 10} more" if len(files) > 10 else ""
                    raise GateFailed(
                        f"{what} has no file {path!r} (it has: {listing}{more})",
                        FailureType.CONFIGURATION_ERROR,
                    ) from None
                limits = Limits(max_file_bytes=max_bytes)
                return _read_entry(archive, entry, what, limits), artifact.revision
        except (*_UNREADABLE, ValueError) as exc:
            raise GateFailed(
                f"{what} at {_where(artifact)} is not a readable zip file ({exc})"
            ) from None

    def _client(self, job: Job, purpose: str) -> S3Objects:
        credentials = job.data.artifact_credentials
        if credentials is None:
            raise GateFailed(f"cannot {purpose}: the job carries no artifactCredentials")
        return self._factory(credentials)

    def _boto3_client(self, credentials: ArtifactCredentials) -> S3Objects:
        """A client signed with this job's keys; the endpoint follows AWS_ENDPOINT_URL_S3."""
        import boto3

        with self._lock:  # one session (it caches service models), one client per job
            if self._session is None:
                self._session = boto3.session.Session(region_name=self._region)
            client = self._session.client(
                "s3",
                aws_access_key_id=credentials.access_key_id.get_secret_value(),
                aws_secret_access_key=credentials.secret_access_key.get_secret_value(),
                aws_session_token=credentials.session_token.get_secret_value(),
                config=aws.client_config(attempts=3, connect_timeout=5, read_timeout=20),
            )
        return cast("S3Objects", client)


# region reading


@dataclass
class _Budget:
    limit: int
    used: int = 0


def _where(artifact: Artifact) -> str:
    loc = artifact.location.s3_location
    return f"s3://{loc.bucket_name}/{loc.object_key}"


def _s3_error(exc: Exception, doing: str, where: str) -> OrchestratorError:
    """One S3 failure as what the tick must do about it; the message names no credential."""
    if not isinstance(exc, ClientError):  # no answer: no connection, a timeout, a cut body
        return ArtifactStoreUnavailable(f"{doing} {where}: {aws.describe(exc)}")
    fault, code = aws.classify(exc), aws.error_code(exc)
    if fault is aws.AwsFault.DENIED:
        return GateFailed(f"access denied {doing} {where} ({code})", FailureType.PERMISSION_ERROR)
    if fault is aws.AwsFault.NOT_FOUND:
        return GateFailed(f"{doing} {where} failed: not found ({code})")
    if fault.transient:
        return ArtifactStoreUnavailable(
            f"{doing} {where}: S3 answered {code or aws.http_status(exc)}"
        )
    return GateFailed(f"{doing} {where} failed ({code or aws.http_status(exc)})")


def _download(client: S3Objects, artifact: Artifact, limits: Limits) -> bytes:
    where, loc = _where(artifact), artifact.location.s3_location
    doing = f"reading input artifact {artifact.name!r} at"
    too_big = f"input artifact {artifact.name!r} at {where} is over the {{}}-byte download limit"
    try:
        response = client.get_object(Bucket=loc.bucket_name, Key=loc.object_key)
        body = response["Body"]
        try:
            if int(response.get("ContentLength") or 0) > limits.max_download_bytes:
                raise GateFailed(too_big.format(limits.max_download_bytes))
            data = cast("bytes", body.read(limits.max_download_bytes + 1))
        finally:
            body.close()
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _s3_error(exc, doing, where) from exc
    if len(data) > limits.max_download_bytes:
        raise GateFailed(too_big.format(limits.max_download_bytes))
    return data


def _declared_entries(data: bytes) -> int | None:
    """The entry count in the zip's end record, before zipfile builds one object per entry
    (None when absent or in a ZIP64 record: zipfile's own count is checked then)."""
    tail = data[-(0xFFFF + 22) :]
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    (count,) = struct.unpack_from("<H", tail, at + 10)
    return None if count == 0xFFFF else int(count)


def _read_zip(
    data: bytes, artifact: Artifact, files: set[str] | None, limits: Limits, budget: _Budget
) -> dict[str, Any]:
    """The files of one input artifact, `files` (None: all of them), parsed."""
    what = f"input artifact {artifact.name!r}"
    too_many = (
        f"{what} at {_where(artifact)} has {{}} entries, over the limit of {limits.max_entries}"
    )
    declared = _declared_entries(data)
    if declared is not None and declared > limits.max_entries:
        raise GateFailed(too_many.format(declared))
    kept: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            if len(entries) > limits.max_entries:
                raise GateFailed(too_many.format(len(entries)))
            present = {e.filename: e for e in entries if not e.is_dir()}
            if files is None:
                for name in present:
                    if not pure.is_safe_name(name):
                        raise GateFailed(
                            f"{what} has an unsafe entry name {name!r} (absolute or with '..')"
                        )
                selected = list(present.values())
            else:
                absent = sorted(files - present.keys())
                if absent:
                    listing = ", ".join(sorted(present)[:10]) or "no files"
                    more = f" and {len(present) - 10} more" if len(present) > 10 else ""
                    raise GateFailed(f"{what} has no file {absent[0]!r} (it has: {listing}{more})")
                selected = [present[name] for name in sorted(files)]
            for entry in selected:
                value = _parse(_read_entry(archive, entry, what, limits), entry.filename, what)
                budget.used += len(json.dumps(value, separators=(",", ":")).encode())
                if budget.used > budget.limit:
                    raise GateFailed(
                        f"input artifacts: more than {budget.limit} bytes of content to keep "
                        f"(at {what} file {entry.filename!r}); read only the files you need, "
                        f'e.g. artifacts.{artifact.name}."outputs.json"'
                    )
                kept[entry.filename] = value
    except (*_UNREADABLE, ValueError) as exc:
        raise GateFailed(
            f"{what} at {_where(artifact)} is not a readable zip file ({exc})"
        ) from None
    return kept


def _read_entry(
    archive: zipfile.ZipFile, entry: zipfile.ZipInfo, what: str, limits: Limits
) -> bytes:
    too_big = (
        f"{what} file {entry.filename!r} is over the {limits.max_file_bytes}-byte limit "
        "for one file (uncompressed)"
    )
    if entry.file_size > limits.max_file_bytes:
        raise GateFailed(too_big)
    with archive.open(entry) as stream:  # never more than the header's size, CRC checked
        raw = stream.read(limits.max_file_bytes + 1)
    if len(raw) > limits.max_file_bytes:
        raise GateFailed(too_big)
    return raw


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(raw: bytes, name: str, what: str) -> Any:
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise GateFailed(
            f"{what} file {name!r} is not UTF-8 text; only text and JSON files can be read"
        ) from None
    if not name.lower().endswith(".json"):
        return text
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
    raise GateFailed(f"{what} file {name!r} is not valid JSON ({reason})")


# endregion
