"""Making the S3 client (boto3 is imported only here, and only when a client is made)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, NoCredentialsError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or assume a role by web "
    "identity (GitHub OIDC: aws-actions/configure-aws-credentials)"
)


def make_client(
    *, endpoint_url: str | None, max_attempts: int, pool: int, anonymous: bool = False
) -> S3Client:
    """An S3 client with the standard credential chain and adaptive retries.

    ``anonymous`` signs nothing when no credentials are found (public buckets, for fetching).
    """
    import boto3  # ~0.2 s: not for commands that never talk to S3
    from botocore import UNSIGNED
    from botocore.config import Config

    session = boto3.session.Session()
    unsigned = anonymous and session.get_credentials() is None
    config = Config(
        retries={"mode": "adaptive", "total_max_attempts": max_attempts},
        max_pool_connections=pool,
        connect_timeout=10,
        read_timeout=120,
        s3={"addressing_style": "path"} if endpoint_url else None,
        signature_version=UNSIGNED if unsigned else None,
    )
    return session.client("s3", endpoint_url=endpoint_url or None, config=config)


def describe_error(error: BaseException) -> str:
    """One line for a boto error: code, status and attempts; never credentials."""
    if isinstance(error, ClientError):
        details: Any = error.response.get("Error", {})
        meta: Any = error.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode", "?")
        attempts = int(meta.get("RetryAttempts", 0)) + 1
        code = details.get("Code", "error")
        message = details.get("Message", "")
        return f"{code} (HTTP {status}, {attempts} attempts) {message}".strip()
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found"
    return f"{type(error).__name__}: {error}"
