"""S3Store: the artifact store in an S3 bucket (AWS or a self-hosted S3-compatible server).

Location: `s3://bucket/prefix`. Endpoint and credentials come from the standard variables
(AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then MLflow's MLFLOW_S3_ENDPOINT_URL; AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY; AWS_DEFAULT_REGION or AWS_REGION, else us-east-1), so one set of variables
serves MLflow and Shipyard. Path-style addressing keeps self-hosted servers (MinIO, SeaweedFS,
Ceph) working without wildcard DNS.

boto3 is imported when the client is first needed. Transient failures (connection errors, 5xx,
throttling) are retried by tenacity with exponential backoff, a few attempts within ~10 s (botocore's
own retries are switched off so that the two do not multiply); what remains becomes a StorageError
that names the endpoint and the bucket and says what to check. Messages never carry the secret key.
Big files go through boto3's managed transfers (multipart); downloads land in a temp file that is
renamed into place.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib.util
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse, urlsplit, urlunsplit

from shipyard.artifacts.store import (
    COMPLETE_MARKER,
    TEMP_PREFIX,
    FolderTransfers,
    Progress,
    join_key,
    validate_key,
    validate_prefix,
)
from shipyard.errors import ConfigError, NotFoundError, ShipyardError, StorageError

T = TypeVar("T")

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
DEFAULT_REGION = "us-east-1"
INSTALL_HINT = "pip install 'shipyard[s3]'"

_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_MiB = 1 << 20
_THROTTLING = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestThrottled",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
}
_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_VERBS = {"get": "read", "download": "read", "head": "read", "put": "write", "upload": "write"}


def endpoint_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint URL from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or MLFLOW_S3_ENDPOINT_URL."""
    env = os.environ if env is None else env
    return next((env[name] for name in ENDPOINT_VARIABLES if env.get(name)), None)


def region_from_env(env: Mapping[str, str] | None = None) -> str:
    """AWS_DEFAULT_REGION, else AWS_REGION, else us-east-1."""
    env = os.environ if env is None else env
    return env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or DEFAULT_REGION


class S3Store(FolderTransfers):
    """Artifacts as objects below `s3://bucket/prefix`.

    `endpoint_url`/`region` default to the environment (see the module docstring); `client` is an
    already-made boto3 S3 client (tests). The retry knobs bound how long a dead server is retried.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        retry_attempts: int = 4,
        retry_max_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        multipart_threshold: int = 16 * _MiB,
        multipart_chunksize: int = 16 * _MiB,
        env: Mapping[str, str] | None = None,
    ):
        if not _BUCKET.match(bucket or ""):
            raise ConfigError(
                f"s3://{bucket}: not a valid bucket name (3-63 lowercase letters, digits, '.' and '-')"
            )
        if client is None and importlib.util.find_spec("boto3") is None:
            raise ConfigError(f"s3:// artifact stores need boto3: {INSTALL_HINT}")
        self.bucket = bucket
        self.prefix = validate_prefix(prefix, allow_root=True)
        self.endpoint_url = endpoint_url or endpoint_from_env(env)
        self.region = region or region_from_env(env)
        self.retry_attempts = max(1, retry_attempts)
        self.retry_max_s = retry_max_s
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self._env = dict(os.environ if env is None else env)
        self._client_obj = client
        self._client_lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> S3Store:
        """s3://bucket or s3://bucket/prefix."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"artifact URI {uri!r}: expected s3://bucket/prefix")
        return cls(parsed.netloc, parsed.path.strip("/"), **kwargs)

    def __repr__(self) -> str:
        return f"S3Store({self.uri()!r}, endpoint={self.endpoint})"

    def __getstate__(self) -> dict[str, Any]:  # picklable for worker processes: no client, no lock
        state = self.__dict__.copy()
        state.update(_client_obj=None, _client_lock=None, _secrets=())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _client_lock=threading.Lock())

    @property
    def endpoint(self) -> str:
        """The endpoint, for messages (any user:password in the URL removed)."""
        if not self.endpoint_url:
            return f"AWS S3 ({self.region})"
        parts = urlsplit(self.endpoint_url)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

    # -- primitives ------------------------------------------------------------------------------
    def put_file(self, local: Path, key: str, *, progress: Progress | None = None) -> None:
        full = self._full(key)
        self._call(
            "upload",
            key,
            lambda: self.client.upload_file(
                str(local), self.bucket, full, Config=self._transfer_config(), Callback=progress
            ),
        )

    def put_bytes(self, data: bytes, key: str) -> None:
        full = self._full(key)
        self._call("put", key, lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=data))

    def get_file(self, key: str, local: Path, *, progress: Progress | None = None) -> None:
        full = self._full(key)
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)

        def download() -> None:
            fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=TEMP_PREFIX)
            os.close(fd)
            try:
                self.client.download_file(
                    self.bucket, full, tmp, Config=self._transfer_config(), Callback=progress
                )
                os.replace(tmp, local)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

        self._call("download", key, download)

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        data: bytes = self._call(
            "get", key, lambda: self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
        )
        return data

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        full = self._full(key)
        return self._call("head", key, lambda: self._head(full))

    def list(self, prefix: str = "") -> builtins.list[str]:
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str = "") -> dict[str, int]:
        prefix = validate_prefix(prefix, allow_root=True)
        full = join_key(self.prefix, prefix) if prefix else self.prefix

        def listing() -> dict[str, int]:
            found: dict[str, int] = {}
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{full}/" if full else ""
            )
            for page in pages:
                found.update(
                    {o["Key"]: int(o["Size"]) for o in page.get("Contents", []) if not o["Key"].endswith("/")}
                )
            if not found and prefix and (size := self._head(full)) is not None:  # `prefix` names one object
                found = {full: size}
            return found

        found = self._call("list", prefix or None, listing)
        cut = len(self.prefix) + 1 if self.prefix else 0
        return {k[cut:]: size for k, size in sorted(found.items())}

    def delete(self, prefix: str) -> int:
        prefix = validate_prefix(prefix)
        keys = [join_key(self.prefix, k) for k in self.list(prefix)]
        marker = join_key(self.prefix, join_key(prefix, COMPLETE_MARKER))
        if marker in keys:  # first: a folder half deleted by a crash reads as absent, not complete
            self._call("delete", prefix, lambda: self.client.delete_object(Bucket=self.bucket, Key=marker))
        rest = [k for k in keys if k != marker]
        for start in range(0, len(rest), 1000):
            batch = [{"Key": k} for k in rest[start : start + 1000]]
            response = self._call(
                "delete",
                prefix,
                functools.partial(
                    self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                ),
            )
            if errors := response.get("Errors"):
                first = errors[0]
                raise StorageError(
                    f"{self.uri(prefix)}: {len(errors)} object(s) could not be deleted at {self.endpoint} "
                    f"(first: {first.get('Key')}: {first.get('Code')} {first.get('Message', '')})"
                )
        return len(keys)

    def uri(self, key: str = "") -> str:
        path = join_key(self.prefix, validate_key(key)) if key else self.prefix
        return f"s3://{self.bucket}/{path}" if path else f"s3://{self.bucket}"

    # -- client and calls ------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        if self._client_obj is None:
            with self._client_lock:
                if self._client_obj is None:
                    self._client_obj = self._make_client()
        return self._client_obj

    def _make_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError(f"s3:// artifact stores need boto3: {INSTALL_HINT}") from None
        session = boto3.session.Session(region_name=self.region)
        credentials = session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            self._secrets = tuple(s for s in (frozen.secret_key, frozen.token) if s)
        config = Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},  # tenacity retries; botocore's would multiply them
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            max_pool_connections=32,
            # Self-hosted servers often reject the CRC checksums newer botocore adds by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=8,
        )

    def _full(self, key: str) -> str:
        return join_key(self.prefix, validate_key(key))

    def _head(self, full: str) -> int | None:
        """The object's size, None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise
        return int(answer["ContentLength"])

    def _call(self, op: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run one request, retrying transient failures; translate what remains into our errors."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
        from tenacity import wait_exponential_jitter as backoff

        attempts = 0
        started = time.monotonic()
        try:
            for attempt in Retrying(
                retry=retry_if_exception(is_transient),
                stop=stop_after_attempt(self.retry_attempts) | stop_after_delay(self.retry_max_s),
                wait=backoff(initial=0.25, max=4, jitter=0.1),
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return fn()
        except ShipyardError:
            raise
        except Exception as exc:
            error = self._translate(exc, op, key, attempts, time.monotonic() - started)
            if error is None:
                raise
            raise error from exc
        raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises

    def _translate(
        self, exc: BaseException, op: str, key: str | None, attempts: int, elapsed: float
    ) -> ShipyardError | None:
        """A user-facing error for a boto failure (None for anything else, e.g. a local OSError)."""
        try:
            from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError, SSLError
        except ImportError:  # pragma: no cover - boto3 is there when a request could be made
            return None
        inner = unwrap(exc)
        where = self.uri(key) if key else self.uri()
        at = f"the S3 server at {self.endpoint} (bucket {self.bucket!r})"
        tried = f"after {attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s"
        message: str | None = None
        if isinstance(inner, ClientError):
            code = _code(inner)
            status = inner.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            detail = inner.response.get("Error", {}).get("Message") or code
            if code == "NoSuchBucket" or (code in _NOT_FOUND and self._bucket_missing()):
                message = (
                    f"{where}: bucket {self.bucket!r} does not exist at {self.endpoint}: create it, "
                    "or fix the artifact URI or the endpoint (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)"
                )
            elif code in _NOT_FOUND:
                return NotFoundError(f"{where}: no such artifact at {self.endpoint}")
            elif code in _CREDENTIALS or status in (401, 403):
                message = (
                    f"{where}: {at} refused the request ({code}: {detail}). Check AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (they must be a key pair known to this server) and that this "
                    f"key may {_VERBS.get(op, op)} in bucket {self.bucket!r}."
                )
            elif is_transient(inner):
                message = (
                    f"{where}: {at} kept failing ({code}, HTTP {status}) {tried}; "
                    "check the server's health and load, then try again."
                )
            else:
                message = f"{where}: {op} failed at {at} ({code}, HTTP {status}: {detail})"
        elif isinstance(inner, NoCredentialsError | PartialCredentialsError):
            message = (
                f"{where}: no complete S3 credentials for {self.endpoint}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        elif isinstance(inner, SSLError):
            message = (
                f"{where}: TLS error talking to {self.endpoint} ({type(inner).__name__}): check http "
                "versus https in the endpoint URL, and AWS_CA_BUNDLE for a private certificate authority"
            )
        elif is_transient(inner):
            message = (
                f"{where}: could not reach {at} {tried} ({type(inner).__name__}). Check that the server "
                "is running and reachable from here, and the endpoint variables "
                "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / MLFLOW_S3_ENDPOINT_URL."
            )
        return None if message is None else StorageError(self._scrub(message))

    def _bucket_missing(self) -> bool:
        """After a 404 (a HEAD has no error code): is it the bucket, not the key, that is missing?"""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            return _code(exc) in {"NoSuchBucket", *_NOT_FOUND}
        except Exception:
            return False
        return False

    def _scrub(self, text: str) -> str:
        """Replace any secret (key, session token) that a server echoed with ***."""
        secrets = {
            *self._secrets,
            self._env.get("AWS_SECRET_ACCESS_KEY", ""),
            self._env.get("AWS_SESSION_TOKEN", ""),
        }
        for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def unwrap(exc: BaseException) -> BaseException:
    """The botocore error inside boto3's transfer wrappers (S3UploadFailedError, RetriesExceededError)."""
    for _ in range(3):
        last = getattr(exc, "last_exception", None)
        if isinstance(last, BaseException):
            exc = last
        elif type(exc).__name__ in ("S3UploadFailedError", "S3DownloadFailedError") and exc.__context__:
            exc = exc.__context__
        else:
            break
    return exc


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: connection trouble, timeouts, 5xx, throttling (not TLS or permission errors)."""
    try:
        from botocore.exceptions import (
            ClientError,
            HTTPClientError,
            IncompleteReadError,
            SSLError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError
    except ImportError:
        return False
    exc = unwrap(exc)
    if isinstance(exc, SSLError):
        return False
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or status == 429 or _code(exc) in _THROTTLING
    return type(exc).__name__ == "RetriesExceededError"  # s3transfer's own streaming retries ran out


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
