"""Secret references in step fields, resolved at poll time and never kept.

A header value (or any field a kind declares as `str | SecretRef`) may be a reference:

    {"secret": "arn:aws:secretsmanager:...:secret:itsm-token-AbCdEf"}   the SecretString
    {"secret": "itsm-token", "json_key": "token"}                       one key of a JSON secret
    {"parameter": "/itsm/token"}                                        an SSM (SecureString) value

A reference may name where it lives (`orchestrator.targets`): `"role_arn"` (and
`"external_id"`) to read it as a role of another account, `"region"` for another region.

The definition, the run state and every message only ever hold the *reference*. The value
is fetched through `services.aws(...)` when a step polls, kept for `CACHE_SECONDS` in an
in-process cache (one per `Services` object, so a warm container asks Secrets Manager at
most every few minutes), handed to the request, and never logged, persisted or echoed:
failures name the reference, not the value.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, SecretStr, model_validator

from orchestrator import aws
from orchestrator.caching import TtlCache
from orchestrator.exceptions import FailureType, OrchestratorError, TerminalError, TransientError
from orchestrator.targets import RoleDenied, RoleUnavailable, Target

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from orchestrator.services import ServiceClients

CACHE_SECONDS = 300.0
REDACTED = "***"
SESSION = ("orchestrator", "secret")
"""Run id and step a role session is named after when the caller gives none."""


class SecretRef(Target):
    """Where a secret value lives: Secrets Manager (`secret`, optional `json_key`) or SSM,
    read as the function's role or the reference's `role_arn`, in its `region`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str | None = None
    json_key: str | None = None
    parameter: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.secret is None) == (self.parameter is None):
            raise ValueError("a secret reference needs exactly one of 'secret' or 'parameter'")
        if self.json_key is not None and self.secret is None:
            raise ValueError("'json_key' goes with 'secret', not with 'parameter'")
        return self

    def __str__(self) -> str:
        where = f" as role {self.role_arn}" if self.role_arn is not None else ""
        where += f" in {self.region}" if self.region is not None else ""
        if self.secret is not None:
            key = f" (key '{self.json_key}')" if self.json_key is not None else ""
            return f"secret '{self.secret}'{key}{where}"
        return f"parameter '{self.parameter}'{where}"


class SecretError(OrchestratorError):
    """A reference could not be resolved; the message names the reference, never a value.
    Raised as one of the two below."""


class SecretUnreadable(SecretError, TerminalError):
    """The reference cannot be resolved as it stands: access denied, no such secret or
    parameter, not a JSON object, no such key."""

    def __init__(
        self, message: str, failure_type: FailureType = FailureType.CONFIGURATION_ERROR
    ) -> None:
        self.failure_type = failure_type
        super().__init__(message)


class SecretUnavailable(SecretError, TransientError):
    """Secrets Manager or SSM was busy or unreachable: the next poll tries again."""


class SecretCache:
    """Resolved values by reference, each for `ttl` seconds (monotonic time)."""

    def __init__(self, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._values: TtlCache[SecretRef, SecretStr] = TtlCache(ttl, clock)

    def resolve(
        self, ref: SecretRef, services: ServiceClients, session: tuple[str, str] = SESSION
    ) -> str:
        """The value of `ref`, from the cache while fresh; raises SecretError. `session`
        names the role session when the reference has a `role_arn` (see `resolve`)."""
        value = self._values.get(ref, lambda: SecretStr(_fetch(ref, services, session)))
        return value.get_secret_value()


# One cache per Services object: it lives exactly as long as the warm app that owns it.
_caches: weakref.WeakKeyDictionary[ServiceClients, SecretCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(services: ServiceClients) -> SecretCache:
    """The cache that belongs to `services` (created on first use)."""
    with _caches_lock:
        cache = _caches.get(services)
        if cache is None:
            cache = _caches[services] = SecretCache()
        return cache


def resolve(ref: SecretRef, services: ServiceClients, session: tuple[str, str] = SESSION) -> str:
    """The value of `ref`, through `services`' cache; raises SecretError naming `ref`.
    `session` is the (run id, step) a role session is named after, for CloudTrail."""
    return cache_for(services).resolve(ref, services, session)


def resolve_headers(
    headers: Mapping[str, str | SecretRef],
    services: ServiceClients,
    session: tuple[str, str] = SESSION,
) -> dict[str, str]:
    """Header values with every reference replaced by its value (a new dict, not persisted);
    `session` as in `resolve`."""
    resolved: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(value, SecretRef):
            try:
                resolved[name] = resolve(value, services, session)
            except SecretUnavailable as exc:
                raise SecretUnavailable(f"header '{name}': {exc}") from None
            except SecretUnreadable as exc:
                raise SecretUnreadable(f"header '{name}': {exc}", exc.failure_type) from None
        else:
            resolved[name] = value
    return resolved


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """`value` (a JSON-like document) with every occurrence of a secret replaced by REDACTED:
    a server that echoes its request must not put a secret into a step's result."""
    hidden = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    if not hidden:
        return value
    if isinstance(value, str):
        for secret in hidden:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(key, hidden): redact(inner, hidden) for key, inner in value.items()}
    if isinstance(value, list):
        return [redact(inner, hidden) for inner in value]
    return value


def _fetch(ref: SecretRef, services: ServiceClients, session: tuple[str, str]) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    target = ref.acting_as(*session)
    try:
        if ref.parameter is not None:
            ssm = services.aws("ssm", target=target)
            parameter = ssm.get_parameter(Name=ref.parameter, WithDecryption=True)
            return str(parameter["Parameter"]["Value"])
        assert ref.secret is not None  # exactly one of the two (the model's validator)
        manager = services.aws("secretsmanager", target=target)
        response = manager.get_secret_value(SecretId=ref.secret)
    except RoleUnavailable as exc:
        raise SecretUnavailable(f"{ref}: {exc}") from None
    except RoleDenied as exc:
        raise SecretUnreadable(f"{ref}: {exc}", exc.failure_type) from None
    except ClientError as exc:
        raise _client_error(ref, exc) from None
    except BotoCoreError as exc:
        raise SecretUnavailable(f"{ref}: unreachable ({aws.describe(exc)})") from None
    text = response.get("SecretString")
    if text is None:
        binary = response.get("SecretBinary", b"")
        text = binary.decode("utf-8", errors="replace") if isinstance(binary, bytes) else ""
    if ref.json_key is None:
        return str(text)
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SecretUnreadable(f"{ref}: the secret is not a JSON object")
    if ref.json_key not in document:
        raise SecretUnreadable(f"{ref}: the secret has no such key")
    found = document[ref.json_key]
    return found if isinstance(found, str) else json.dumps(found)


def _client_error(ref: SecretRef, exc: Exception) -> SecretError:
    fault, code = aws.classify(exc), aws.describe(exc)
    if fault.transient:
        return SecretUnavailable(f"{ref}: unavailable ({code})")
    if fault is aws.AwsFault.DENIED:
        return SecretUnreadable(f"{ref}: access denied ({code})", FailureType.PERMISSION_ERROR)
    if fault is aws.AwsFault.NOT_FOUND:
        return SecretUnreadable(f"{ref}: not found ({code})")
    return SecretUnreadable(f"{ref}: could not be read ({code})")
