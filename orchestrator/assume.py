"""Clients that act as another role: STS AssumeRole credentials, kept and refreshed by botocore.

    RoleSessions.client(service, target, region, config)
        │ credentials for (role, external id, session name): one AssumeRole, then botocore's
        │ RefreshableCredentials, which ask STS again 15 minutes before they expire (in the
        │ last 10 minutes, before any request is signed); kept in this process, never
        │ logged, stored or put in a message
        ▼
    a botocore session holding those credentials, one client per (service, region, config)

Why the session name is part of the key: CloudTrail in the target account shows it beside
every call. Sharing one role session between runs would put run B's calls under run A's
name, so each step of each run has its own: one AssumeRole per step per run per hour, not
per poll. At most `MAX_SESSIONS` are kept (the least recently used go first).

`DURATION_SECONDS` is one hour: the function's own credentials are a role session, and STS
caps a session assumed from a role session ("role chaining") at one hour.

STS errors are mapped once, here (`orchestrator.targets` holds the classes): AccessDenied
and other refusals are `RoleDenied` (the gate fails), throttling, 5xx and no connection are
`RoleUnavailable` (the step tries again at its next poll).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator import aws
from orchestrator.exceptions import FailureType
from orchestrator.targets import RoleDenied, RoleUnavailable

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable

    import botocore.session
    from botocore.config import Config
    from botocore.credentials import RefreshableCredentials
    from mypy_boto3_sts import STSClient

    from orchestrator.targets import AwsTarget

DURATION_SECONDS = 3600
MAX_SESSIONS = 32

_Key = tuple[str, str | None, str]


@dataclass
class _Role:
    """One role session: its credentials, the botocore session that holds them, its clients."""

    credentials: RefreshableCredentials
    session: botocore.session.Session
    clients: dict[tuple[str, str | None, bool], Any] = field(default_factory=dict)


class RoleSessions:
    """Assumed-role credentials and their clients, per process (see the module docstring).

    `region` is the function's own (STS is called there); `now` is botocore's clock for
    expiry (a test may move it); `sts` builds the STS client (default: boto3's, with the
    function's own credentials and the `AWS_ENDPOINT_URL_STS` endpoint)."""

    def __init__(
        self,
        region: str | None = None,
        *,
        now: Callable[[], datetime.datetime] | None = None,
        sts: Callable[[], STSClient] | None = None,
    ) -> None:
        self._region = region
        self._now = now
        self._make_sts = sts
        self._sts: STSClient | None = None
        self._roles: OrderedDict[_Key, _Role] = OrderedDict()
        self._lock = threading.Lock()
        self._base: botocore.session.Session | None = None

    def client(self, service: str, target: AwsTarget, config: Config, single: bool) -> Any:
        """A client for `service` in the target's region (or the function's), acting as the
        target's role; raises RoleDenied or RoleUnavailable when the role cannot be had."""
        assert target.role_arn is not None and target.session_name is not None
        key: _Key = (target.role_arn, target.external_id, target.session_name)
        with self._lock:
            role = self._roles.get(key)
            if role is not None:
                self._roles.move_to_end(key)
        if role is None:
            role = self._start(target)  # outside the lock: a network call
            with self._lock:
                role = self._roles.setdefault(key, role)
                self._roles.move_to_end(key)
                while len(self._roles) > MAX_SESSIONS:
                    self._roles.popitem(last=False)
        # Refreshes when due (botocore's windows); a refresh that fails in the last minutes
        # raises our error here, before the step's call, rather than inside it.
        role.credentials.get_frozen_credentials()
        region = target.region or self._region
        wanted = (service, region, single)
        with self._lock:
            client = role.clients.get(wanted)
            if client is None:
                client = role.session.create_client(service, region_name=region, config=config)
                role.clients[wanted] = client
        return client

    def _start(self, target: AwsTarget) -> _Role:
        import datetime

        import botocore.session
        from botocore.credentials import RefreshableCredentials

        first = self.assume(target)
        kwargs: dict[str, Any] = {"time_fetcher": self._now} if self._now is not None else {}
        credentials = RefreshableCredentials(
            access_key=first["access_key"],
            secret_key=first["secret_key"],
            token=first["token"],
            expiry_time=datetime.datetime.fromisoformat(first["expiry_time"]),
            refresh_using=lambda: self.assume(target),
            method="assume-role",
            **kwargs,
        )
        session = botocore.session.Session()
        with self._lock:
            if self._base is None:
                self._base = botocore.session.Session()
            # Service models and endpoints are read from disk once, not once per role.
            session.register_component("data_loader", self._base.get_component("data_loader"))
        session.register_component("credential_provider", _Given(credentials))
        return _Role(credentials, session)

    def assume(self, target: AwsTarget) -> dict[str, str]:
        """One AssumeRole, as botocore's refresh expects it (`expiry_time` as ISO 8601)."""
        from botocore.exceptions import BotoCoreError, ClientError

        role = target.role_arn
        assert role is not None and target.session_name is not None
        request: dict[str, Any] = {
            "RoleArn": role,
            "RoleSessionName": target.session_name,
            "DurationSeconds": DURATION_SECONDS,
        }
        if target.external_id:
            request["ExternalId"] = target.external_id
        try:
            response = self._sts_client().assume_role(**request)
        except ClientError as exc:
            raise _refused(target, exc) from None
        except BotoCoreError as exc:
            raise RoleUnavailable(f"role {role}: STS unreachable ({aws.describe(exc)})") from None
        found = response["Credentials"]
        return {
            "access_key": found["AccessKeyId"],
            "secret_key": found["SecretAccessKey"],
            "token": found["SessionToken"],
            "expiry_time": found["Expiration"].isoformat(),
        }

    def _sts_client(self) -> STSClient:
        with self._lock:
            if self._sts is None:
                self._sts = self._make_sts() if self._make_sts else self._default_sts()
            return self._sts

    def _default_sts(self) -> STSClient:
        import boto3

        from orchestrator.aws import client_config

        config = client_config(attempts=3, read_timeout=10)
        client: STSClient = boto3.client("sts", region_name=self._region, config=config)
        return client


class _Given:
    """A credential provider of one botocore session: the role's refreshable credentials."""

    def __init__(self, credentials: RefreshableCredentials) -> None:
        self._credentials = credentials

    def load_credentials(self) -> RefreshableCredentials:
        return self._credentials


def _refused(target: AwsTarget, exc: Exception) -> RoleDenied | RoleUnavailable:
    role, code = target.role_arn, aws.describe(exc)
    fault = aws.classify(exc)
    if fault.transient:
        return RoleUnavailable(f"role {role}: STS unavailable ({code})")
    if code == "RegionDisabledException":
        return RoleDenied(
            f"cannot assume role {role} ({code}): STS is not activated in the function's "
            "region for the role's account (IAM account settings)",
            FailureType.CONFIGURATION_ERROR,
        )
    if fault is aws.AwsFault.DENIED:
        if target.external_id:
            trust = (
                "its trust policy must allow sts:AssumeRole to this function's role with the "
                "condition sts:ExternalId equal to the step's external_id"
            )
        else:
            trust = (
                "its trust policy must allow sts:AssumeRole to this function's role (with no "
                "sts:ExternalId condition: the step gives no external_id)"
            )
        return RoleDenied(
            f"cannot assume role {role} ({code}): {trust}, and this function's role needs "
            "sts:AssumeRole on it (the stack's AssumableRoleArns parameter); see docs/DEPLOY.md"
        )
    return RoleDenied(f"cannot assume role {role} ({code})", FailureType.CONFIGURATION_ERROR)
