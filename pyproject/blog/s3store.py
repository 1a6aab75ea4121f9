"""Media files in S3-compatible object storage (MEDIA_STORAGE=s3), for sites on several hosts.

`S3Store` keeps the same promises as the local folder in mediastore.py: `put` overwrites,
`get` gives None for a missing object, `delete` of a missing object is fine, and `url` is
where a browser fetches the object (MEDIA_S3_PUBLIC_URL, a CDN or the bucket's own address),
never a signed or private address. Objects are named by their content's hash, so every one
is stored with a year's `immutable` cache lifetime.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pyproject.blog.mediastore import IMMUTABLE, check_name
from pyproject.config import ConfigError
from pyproject.lib.exceptions import ServiceUnavailable

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
log = logging.getLogger(__name__)


class StorageUnavailable(ServiceUnavailable):
    """The S3 server did not answer, or refused, after the client's tries: a 503 page."""

    description = (
        "The picture storage did not answer, so nothing was changed. Please try again in a minute."
    )


class S3Store:
    """A MediaStore backed by one bucket of an S3-compatible server, through boto3."""

    def __init__(
        self,
        *,
        bucket: str,
        public_url: str,
        endpoint_url: str = "",
        region: str = "",
        access_key: str = "",
        secret_key: str = "",
        timeout: float = 10,
        attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ConfigError("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET, the bucket's name")
        if not public_url.startswith(("http://", "https://")):
            raise ConfigError(
                "MEDIA_S3_PUBLIC_URL must be the absolute http(s) address the bucket's "
                "objects are served from, like https://media.example.com"
            )
        if bool(access_key) != bool(secret_key):
            raise ConfigError(
                "set both MEDIA_S3_ACCESS_KEY and MEDIA_S3_SECRET_KEY, or neither "
                "(then boto3's own credentials chain is used)"
            )
        self.bucket = bucket
        self.public_url = public_url.rstrip("/")
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self._credentials = (access_key or None, secret_key or None)
        self._config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            # Counting the first try; standard mode backs off between them.
            retries={"total_max_attempts": attempts, "mode": "standard"},
            # Path-style keys work on every S3-compatible server (MinIO, Ceph, moto);
            # virtual-host style needs DNS for each bucket.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self._lock = threading.Lock()
        self._client: Any = None
        self._client_pid = 0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> S3Store:
        """Give the store the MEDIA_S3_* settings describe."""
        return cls(
            bucket=str(config.get("MEDIA_S3_BUCKET", "")),
            public_url=str(config.get("MEDIA_S3_PUBLIC_URL", "")),
            endpoint_url=str(config.get("MEDIA_S3_ENDPOINT_URL", "")),
            region=str(config.get("MEDIA_S3_REGION", "")),
            access_key=str(config.get("MEDIA_S3_ACCESS_KEY", "")),
            secret_key=str(config.get("MEDIA_S3_SECRET_KEY", "")),
            timeout=float(config.get("MEDIA_S3_TIMEOUT", 10)),
        )

    def __repr__(self) -> str:
        # Never the keys: a store may end up in a log line or a traceback.
        return f"S3Store(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def client(self) -> Any:
        """Give this process's boto3 client (made on first use: a forked worker makes its own)."""
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            with self._lock:
                if self._client is None or self._client_pid != pid:
                    access_key, secret_key = self._credentials
                    self._client = boto3.session.Session().client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=self.region,
                        aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key,
                        config=self._config,
                    )
                    self._client_pid = pid
        return self._client

    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Store `data` under `name` (replacing any object there), publicly cacheable."""
        key = check_name(name)
        with self._answering("store", key):
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                CacheControl=IMMUTABLE,
            )

    def get(self, name: str) -> bytes | None:
        """Give the object's bytes, or None when there is no such object."""
        key = check_name(name)
        with self._answering("read", key):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                if _is_missing(error):
                    return None
                raise
            with answer["Body"] as body:
                return body.read()

    def exists(self, name: str) -> bool:
        """Say whether an object is stored under `name`."""
        key = check_name(name)
        with self._answering("look for", key):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                if _is_missing(error):
                    return False
                raise
        return True

    def delete(self, name: str) -> None:
        """Remove the object (S3 answers a missing one as deleted too)."""
        key = check_name(name)
        with self._answering("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    @contextlib.contextmanager
    def _answering(self, action: str, key: str) -> Iterator[None]:
        """Turn the S3 server's failures (after the client's tries) into StorageUnavailable."""
        try:
            yield
        except (BotoCoreError, ClientError) as error:
            # botocore's messages name the operation, bucket and key, never the keys.
            log.warning("could not %s %s in bucket %s: %s", action, key, self.bucket, error)
            raise StorageUnavailable() from error

    def url(self, name: str) -> str:
        """Give the public address browsers load the object from."""
        return f"{self.public_url}/{check_name(name)}"


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _MISSING_CODES
