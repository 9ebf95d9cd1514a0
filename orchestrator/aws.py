"""AWS, once: what a botocore error means, and how every boto3 client is configured.

    classify(exc) -> AwsFault    one table: a ClientError by its code, then by its HTTP status;
                                 anything that is not the service's answer (BotoCoreError: no
                                 connection, a timeout; OSError reading a body) is UNAVAILABLE
    client_config(...)           botocore's Config for every client we build: standard retry
                                 mode counted in total attempts, our timeouts, our user agent

Each call site decides what a fault means for it (retry at the next poll, fail the gate as a
PermissionError, a ConfigurationError...) and writes its own message, which names the code
(`describe`). botocore is imported inside the functions, never here: a cold start that needs
no client loads none of it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from orchestrator import __version__

if TYPE_CHECKING:
    from botocore.config import Config

USER_AGENT_EXTRA = f"codepipeline-orchestrator/{__version__}"


class AwsFault(enum.Enum):
    """Why an AWS call failed, as far as the caller's next move goes."""

    THROTTLED = "throttled"
    """The service asks us to slow down: the same call later will do."""
    UNAVAILABLE = "unavailable"
    """No answer (no connection, a timeout) or a 5xx: the same call later may do."""
    DENIED = "denied"
    """Credentials or a policy refuse the call: it fails until someone changes them."""
    NOT_FOUND = "not_found"
    """What the call names does not exist."""
    INVALID = "invalid"
    """Any other refusal: the request itself is wrong."""

    @property
    def transient(self) -> bool:
        """Whether the fault is the service's state rather than the request's (throttled or
        unavailable): worth the same call later. A site may treat more faults as transient."""
        return self in (AwsFault.THROTTLED, AwsFault.UNAVAILABLE)


# Error codes across the services we call. Throttling codes are botocore's standard retry
# mode's; a code that is not here falls back to the patterns below, then to the HTTP status.
_BY_CODE: dict[str, AwsFault] = {
    **dict.fromkeys(
        (
            "BandwidthLimitExceeded",
            "EC2ThrottledException",  # Lambda
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "RequestThrottled",
            "RequestThrottledException",
            "SlowDown",  # S3
            "Throttled",
            "ThrottledException",
            "Throttling",  # CloudWatch, S3
            "ThrottlingException",
            "TooManyRequestsException",
        ),
        AwsFault.THROTTLED,
    ),
    **dict.fromkeys(
        (
            "InternalError",
            "InternalFailure",
            "InternalServerError",
            "InternalServiceError",
            "PriorRequestNotComplete",
            "RequestTimeout",  # S3: a 400 that botocore retries
            "RequestTimeoutException",
            "ResourceNotReadyException",  # Lambda: the function is being created or updated
            "ServiceException",  # Lambda
            "ServiceUnavailable",
        ),
        AwsFault.UNAVAILABLE,
    ),
    **dict.fromkeys(
        (
            "AccessDenied",
            "AccessDeniedException",
            "AllAccessDisabled",
            "AuthorizationError",  # SNS
            "ExpiredToken",
            "ExpiredTokenException",
            "Forbidden",
            "InvalidAccessKeyId",
            "InvalidClientTokenId",
            "InvalidToken",
            "KMS.AccessDeniedException",  # S3 with SSE-KMS
            "KMSAccessDeniedException",  # Secrets Manager, Lambda (a 502 that is no outage)
            "SignatureDoesNotMatch",
            "UnrecognizedClientException",
        ),
        AwsFault.DENIED,
    ),
    **dict.fromkeys(
        (
            "404",  # S3 HEAD: no body, the status is the code
            "ExecutionDoesNotExist",
            "JobNotFoundException",
            "NoSuchBucket",
            "NoSuchKey",
            "NoSuchVersion",
            "NotFound",
            "ParameterNotFound",
            "ParameterVersionNotFound",
            "ResourceNotFoundException",
            "StateMachineDoesNotExist",
        ),
        AwsFault.NOT_FOUND,
    ),
}
_BY_PATTERN: tuple[tuple[str, AwsFault], ...] = (
    ("Throttl", AwsFault.THROTTLED),
    ("AccessDenied", AwsFault.DENIED),  # EC2AccessDeniedException, KMS.AccessDenied...
)


def classify(exc: BaseException) -> AwsFault:
    """What `exc`, raised by a boto3 call, means: see the module docstring."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return AwsFault.UNAVAILABLE
    code = error_code(exc)
    if code in _BY_CODE:
        return _BY_CODE[code]
    for part, fault in _BY_PATTERN:
        if part in code:
            return fault
    status = http_status(exc)
    if status == 429:
        return AwsFault.THROTTLED
    if status >= 500:
        return AwsFault.UNAVAILABLE
    if status in (401, 403):
        return AwsFault.DENIED
    if status == 404:
        return AwsFault.NOT_FOUND
    return AwsFault.INVALID


def error_code(exc: BaseException) -> str:
    """The service's error code of a ClientError ("" for anything else, or none given)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", "") or "")


def http_status(exc: BaseException) -> int:
    """The HTTP status of a ClientError's response (0 for anything else, or none known)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return 0
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def describe(exc: BaseException) -> str:
    """What a message names: the error code of an answer ("error" when it gave none), else
    the exception's class (`EndpointConnectionError`). Never the error's text: it may quote
    the request."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return error_code(exc) or "error"
    return type(exc).__name__


def may_have_taken_effect(exc: BaseException) -> bool:
    """Whether the request went out but its answer was lost (a read timeout, a connection
    closed mid-response): the call may have run, so a call that is not idempotent must not
    be repeated blindly. False for an answer and for a request that never left."""
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    return isinstance(exc, (ReadTimeoutError, ConnectionClosedError))


def client_config(
    *, attempts: int = 3, connect_timeout: float = 5.0, read_timeout: float = 20.0
) -> Config:
    """botocore's Config for a client: botocore's standard retry mode with `attempts` calls
    in all, the first included (`total_max_attempts`; botocore's `max_attempts` would count
    retries only), and our name in the user agent."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=USER_AGENT_EXTRA,
    )
