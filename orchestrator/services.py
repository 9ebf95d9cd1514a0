"""Clients the steps use, built lazily so a tick imports and connects only what it needs.

`ServiceClients` is the seam the engine hands to steps (and steps to secret references and
notifications): `http`, an `HttpClient`, and `aws(service, target=...)`, a boto3 client
typed by service, for the function's own role and region or for a step's target (another
role, assumed through STS by `orchestrator.assume`, another region: `orchestrator.targets`);
`governance`, freezes and locks (`orchestrator.governance.Governance`, kept in the runs
table).
Production uses `Services`: urllib3 (already shipped with botocore) and boto3 clients
configured by `orchestrator.aws.client_config`, whose endpoints follow the standard
`AWS_ENDPOINT_URL_*` variables. Unit tests pass their own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from orchestrator.exceptions import TransientError

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable

    import urllib3
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_sts import STSClient

    from orchestrator.assume import RoleSessions
    from orchestrator.governance import Governance
    from orchestrator.targets import AwsTarget

MAX_BODY_BYTES = 1_000_000


class HttpError(TransientError):
    """The request did not get a response (connection refused, timeout, TLS, too large)."""


@dataclass(frozen=True)
class HttpResponse:
    """A response, with header names in lower case and the body capped in size."""

    status: int
    headers: dict[str, str]
    body: bytes


class HttpClient(Protocol):
    """Sends one HTTP request."""

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        """Send the request; raise HttpError when no response arrives within `timeout`."""
        ...


def post_json(http: HttpClient, url: str, document: Any, timeout: float) -> str | None:
    """POST `document` as JSON (a notification's webhook); None when it was taken (2xx),
    else what went wrong, to report: `no response` or `HTTP 500`."""
    body = json.dumps(document).encode()
    try:
        response = http.request("POST", url, {"Content-Type": "application/json"}, body, timeout)
    except HttpError:
        return "no response"
    return None if 200 <= response.status < 300 else f"HTTP {response.status}"


class Urllib3Client:
    """HttpClient on urllib3, with bounded reads and no retries (the step's poll retries)."""

    def __init__(self) -> None:
        import urllib3

        self._pool: urllib3.PoolManager = urllib3.PoolManager(retries=False)

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        import urllib3

        deadline = time.monotonic() + timeout
        try:
            response: urllib3.BaseHTTPResponse = self._pool.request(
                method,
                url,
                headers=headers,
                body=body,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=False,
                redirect=False,
            )
            try:
                data = _read_by(response, deadline, url)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise HttpError(f"{type(exc).__name__} from {_origin(url)}") from None
        if len(data) > MAX_BODY_BYTES:
            raise HttpError(f"response from {_origin(url)} exceeds {MAX_BODY_BYTES} bytes")
        headers_out = {key.lower(): value for key, value in response.headers.items()}
        return HttpResponse(status=response.status, headers=headers_out, body=data)


def _read_by(response: urllib3.BaseHTTPResponse, deadline: float, url: str) -> bytes:
    """The body, read in chunks as they arrive, giving up at `deadline`: a per-read
    timeout alone lets a server that trickles bytes hold the tick past the Lambda's end."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        if time.monotonic() >= deadline:
            raise HttpError(f"response from {_origin(url)} too slow")
        chunk = response.read1(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _origin(url: str) -> str:
    """Scheme, host and port only: paths and queries may carry tokens."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


class ServiceClients(Protocol):
    """What steps, secret references and notifications reach the outside world with.

    `aws()` is typed per service: the services a step may call are the ones listed here.
    `single_attempt` clients never retry: for calls that are not idempotent (invoking a
    Lambda function), where botocore's retry of a read timeout would run them twice.
    `target` (None: the function's own role and region) gives a client acting as the
    target's role, in its region; getting one raises `targets.RoleDenied` or
    `targets.RoleUnavailable` when the role cannot be assumed.
    """

    @property
    def http(self) -> HttpClient: ...

    @property
    def governance(self) -> Governance:
        """Freezes (`active(name, now)`: is a freeze on?) and environment locks."""
        ...

    @overload
    def aws(
        self,
        service: Literal["cloudwatch"],
        *,
        single_attempt: bool = False,
        target: AwsTarget | None = None,
    ) -> CloudWatchClient: ...
    @overload
    def aws(
        self,
        service: Literal["lambda"],
        *,
        single_attempt: bool = False,
        target: AwsTarget | None = None,
    ) -> LambdaClient: ...
    @overload
    def aws(
        self,
        service: Literal["s3"],
        *,
        single_attempt: bool = False,
        target: AwsTarget | None = None,
    ) -> S3Client: ...
    @overload
    def aws(
        self,
        service: Literal["secretsmanager"],
        *,
        single_attempt: bool = False,
        target: AwsTarget | None = None,
    ) -> SecretsManagerClient: ...
    @overload
    def aws(
        self,
        service: Literal["sns"],
        *,
        single_attempt: bool = False,
        target: AwsTarget | None = None,
    ) -> SNSClient: ...
    @overload
    def aws(
        self,
        service: Literal["ssm"],
        *,
        single_attempt: bool = False,
        target: AwsTarget | None = None,
    ) -> SSMClient: ...
    @overload
    def aws(
        self,
        service: Literal["stepfunctions"],
        *,
        single_attempt: bool = False,
        target: AwsTarget | None = None,
    ) -> SFNClient: ...


class Services:
    """Per-process cache of clients for the steps (the production `ServiceClients`).

    `credentials_clock` and `sts` are for tests: botocore's clock for the expiry of assumed
    credentials, and the STS client that assumes roles (see `orchestrator.assume`)."""

    def __init__(
        self,
        http: HttpClient | None = None,
        region: str | None = None,
        *,
        credentials_clock: Callable[[], datetime.datetime] | None = None,
        sts: Callable[[], STSClient] | None = None,
        governance: Governance | Callable[[], Governance] | None = None,
    ) -> None:
        self._http = http
        self._region = region
        self._governance = governance
        self._clients: dict[str, Any] = {}
        self._credentials_clock = credentials_clock
        self._sts = sts
        self._roles: RoleSessions | None = None

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            self._http = Urllib3Client()
        return self._http

    @property
    def governance(self) -> Governance:
        """The runs table's freezes and locks (given by the entry point, which knows the
        table)."""
        if callable(self._governance):  # built at first use: most gates never ask
            self._governance = self._governance()
        if self._governance is None:
            raise RuntimeError("no governance store: these services were built without a table")
        return self._governance

    def aws(
        self, service: str, *, single_attempt: bool = False, target: AwsTarget | None = None
    ) -> Any:
        """A boto3 client for `service`, created once per process and target (see
        `ServiceClients`)."""
        from orchestrator.aws import client_config

        config = (
            client_config(attempts=1, read_timeout=60)
            if single_attempt
            else client_config(attempts=3, read_timeout=20)
        )
        if target is not None and target.role_arn is not None:
            return self.roles.client(service, target, config, single_attempt)
        region = target.region if target is not None and target.region else self._region
        key = f"{service}{'/once' if single_attempt else ''}@{region or ''}"
        if key not in self._clients:
            import boto3

            factory: Any = boto3.client  # the service name is data here, not a literal
            self._clients[key] = factory(service, region_name=region, config=config)
        return self._clients[key]

    @property
    def roles(self) -> RoleSessions:
        """The assumed-role sessions of this process (created on first use)."""
        if self._roles is None:
            from orchestrator.assume import RoleSessions

            self._roles = RoleSessions(self._region, now=self._credentials_clock, sts=self._sts)
        return self._roles
