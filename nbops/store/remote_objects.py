"""Content-addressed objects in object storage: ``s3://``, ``gs://``, ``az://`` or any fsspec URL.

The same interface as ``objects.ObjectStore`` (see its module docstring), with
``<prefix>/ab/cdef...`` as the key of the bytes whose sha256 is ``abcdef...``
(``<prefix>/blake3/ab/cdef...`` for a BLAKE3 digest ``b3-abcdef...``: ``objects.object_key``).

- Nothing is read whole into memory: uploads go in parts of ``part_size``
  (S3 multipart, ``max_concurrency`` parts in flight: an upload holds about twice
  part_size x max_concurrency, 64 MiB, as botocore keeps a copy of each part),
  downloads and re-hashes in ranges of ``read_size``.
- A write is atomic: an S3 PUT or complete-multipart, a GCS upload and an
  Azure block commit make the whole object appear at once; other protocols
  write ``<prefix>/tmp/<uuid>`` and rename it. Two writers of one digest upload
  the same bytes, so the last one to finish changes nothing.
- Opening is free: the file system is made on first use, and ``probe()`` is the
  one call that asks the server anything up front (the run store calls it when
  it opens for writing). Every failure leaves as a ``StoreError`` naming the URL
  (never credentials) with the fix for its cause.
- Credentials come from the SDK defaults (AWS env/profile; ``AWS_ENDPOINT_URL``
  for S3-compatible servers, read by botocore itself), or ``user:pass@`` in the
  URL, which is stripped from ``location``.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nbops.errors import CorruptObjectError, StoreError
from nbops.runtime.files import algorithm_of, digest_file, digest_matches, new_hasher
from nbops.store.objects import digest_of_key, object_key

__all__ = ["FsspecObjects"]

MiB = 2**20
# Protocols whose put_file makes the object appear whole or not at all.
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"}
_S3 = {"s3", "s3a"}
_MAX_PARTS = 10_000  # of one S3 multipart upload
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs", "adl": "adlfs"}
# An unreachable endpoint fails within 10 s: two attempts of at most 4 s to connect.
# The read timeout is longer: a busy server may take a while to answer a part.
_S3_CONFIG = {"connect_timeout": 4, "read_timeout": 60, "retries": {"max_attempts": 2, "mode": "standard"}}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidToken",
    "InvalidClientTokenId",
    "403",
    "Forbidden",
}
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "FSTimeoutError",
}


class FsspecObjects:
    """The objects of a store on an fsspec URL; see the module docstring."""

    shared = True  # every worker that has the credentials reaches the same objects
    materialize_verifies = True  # materialize re-hashes the bytes it downloads
    part_size = 16 * MiB  # more parts for objects over 80 GB: S3 allows 10,000
    max_concurrency = 4
    read_size = 8 * MiB

    def __init__(self, url: str, **storage_options):
        self.protocol, sep, rest = url.partition("://")
        if not sep:
            raise ValueError(f"not an object store URL: {url!r}")
        netloc, _, path = rest.partition("/")
        userinfo, at, host = netloc.rpartition("@")
        self._options = dict(storage_options)
        # "user:pass@" is credentials; "container@account" (Azure) is part of the address.
        if at and ":" in userinfo:
            user, _, password = userinfo.partition(":")
            if self.protocol in _S3:
                self._options.update(key=user, secret=password)
            else:
                self._options.update(username=user, password=password)
            netloc = host
        self.location = f"{self.protocol}://{netloc}/{path}".rstrip("/")
        self._fs = None
        self._root: str | None = None

    def __repr__(self) -> str:
        return f"FsspecObjects({self.location!r})"

    def __getstate__(self) -> dict:
        # A Ray worker makes its own file system (and event loop) from the URL.
        return {**self.__dict__, "_fs": None, "_root": None}

    @property
    def fs(self):
        """The fsspec file system, made on first use (no network call)."""
        if self._fs is None:
            self._fs, self._root = self._filesystem()
        return self._fs

    @property
    def root(self) -> str:
        """The prefix of every key, as the file system spells paths."""
        self.fs  # noqa: B018 (sets _root)
        return self._root

    def _filesystem(self):
        import fsspec

        options = dict(self._options)
        if self.protocol in _S3:
            options.setdefault("config_kwargs", _S3_CONFIG)
        # Each store makes its own file system from today's environment (credentials,
        # endpoint), and never trusts a cached listing that another writer may have changed.
        options.setdefault("skip_instance_cache", True)
        options.setdefault("use_listings_cache", False)
        try:
            cls = fsspec.get_filesystem_class(self.protocol)
        except ImportError:
            package = _PACKAGES.get(self.protocol, f"the fsspec implementation of {self.protocol}://")
            raise StoreError(
                f"the object store {self.location} needs the '{package}' package, which is not installed",
                f"pip install {package}",
            ) from None
        except ValueError:
            raise StoreError(f"the object store {self.location} has an unknown protocol {self.protocol}://", "use s3://, gs://, az:// or file://") from None
        fs = cls(**options)
        return fs, fs._strip_protocol(self.location).rstrip("/")

    # --- names -----------------------------------------------------------------

    def key(self, digest: str) -> str:
        """The file system path of an object; ValueError for anything but an object digest."""
        return f"{self.root}/{object_key(digest)}"

    def url(self, digest: str) -> str:
        """The object's URL as users see it (no credentials)."""
        return f"{self.location}/{object_key(digest)}"

    # --- the interface ---------------------------------------------------------

    def probe(self) -> None:
        """One cheap call to the server: StoreError when it is unreachable, the bucket
        is missing or the credentials are refused. Read access only is checked."""
        if self.protocol == "memory":
            return
        bucket, _, prefix = self.root.partition("/")
        with self._errors("cannot open the object store", probing=True):
            if self.protocol in _S3:
                self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)
            else:
                self.fs.ls(bucket or "/", detail=False)

    def has(self, digest: str) -> bool:
        return self.check(digest) is None

    def check(self, digest: str, size: int | None = None) -> str | None:
        """The cheap check (one info call): None when the object is there with ``size``
        bytes (any size when None), else "missing", "truncated" or "wrong size"."""
        actual = self._size(self.key(digest))
        if actual is None:
            return "missing"
        if size is None or actual == size:
            return None
        return "truncated" if actual < size else "wrong size"

    def verify(self, digest: str) -> bool:
        """Re-hash the object, streamed: True only when it exists and its bytes still hash to its name."""
        key = self.key(digest)
        h = new_hasher(algorithm_of(digest))
        with self._errors(f"cannot read object {digest[:12]}"):
            try:
                for chunk in self._chunks(key):
                    h.update(chunk)
            except FileNotFoundError:
                return False
        return h.digest() == digest

    def delete(self, digest: str) -> None:
        key = self.key(digest)
        with self._errors(f"cannot delete object {digest[:12]}"):
            try:
                self.fs.rm_file(key)
            except FileNotFoundError:
                pass

    def age_s(self, digest: str) -> float:
        """Seconds since the object was written (gc spares young ones); 0 when the store does not say."""
        with self._errors(f"cannot stat object {digest[:12]}"):
            info = self.fs.info(self.key(digest))
        stamp = info.get("LastModified") or info.get("last_modified") or info.get("mtime") or info.get("created")
        if hasattr(stamp, "timestamp"):
            stamp = stamp.timestamp()
        return max(0.0, time.time() - float(stamp)) if isinstance(stamp, (int, float)) else 0.0

    def digests(self) -> Iterator[tuple[str, int]]:
        """Every object (digest, bytes), in no particular order."""
        with self._errors("cannot list the objects"):
            try:
                found = self.fs.find(self.root, detail=True)
            except FileNotFoundError as exc:
                if _code(exc) == "NoSuchBucket":
                    raise
                return
        start = len(self.root) + 1
        for path, info in found.items():
            digest = digest_of_key(path[start:])
            if digest is not None and info.get("type", "file") == "file":
                yield digest, int(info["size"])

    def put_file(self, src: str | os.PathLike, *, move: bool = False, digest: str | None = None) -> str:
        """Store a file's bytes once per digest; skipped when an object of the same size is there.
        ``digest``: the digest the writer computed while writing (not read again).
        ``move`` is accepted for the interface: the source is left as it is (a local
        store links it; here it is the caller's to delete)."""
        digest = digest or digest_file(src)
        key = self.key(digest)
        size = os.path.getsize(src)
        if self._size(key, f"cannot store object {digest[:12]}") == size:
            return digest
        try:
            with self._errors(f"cannot store object {digest[:12]}"):
                if self.protocol in _ATOMIC_PUT:
                    self.fs.put_file(os.fspath(src), key, **self._put_options(size))
                else:
                    self._put_by_rename(src, key)
        except StoreError:
            if not os.path.exists(src):
                raise FileNotFoundError(src) from None  # the source vanished: the caller's problem, not the store's
            raise
        return digest

    def materialize(self, digest: str, dest: str | os.PathLike, size: int | None = None) -> None:
        """Download the object into ``dest``, hashing it on the way: a missing object, one whose
        size is not ``size``, or bytes that do not hash to ``digest`` raise CorruptObjectError
        and leave ``dest`` as it was."""
        key = self.key(digest)
        problem = self.check(digest, size)
        if problem:
            raise CorruptObjectError(digest, problem, self.url(digest))
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
        try:
            self._download(digest, key, tmp)
            if not digest_matches(tmp, digest):  # a local re-read: far cheaper than ranged GETs hashed on the way
                raise CorruptObjectError(digest, "damaged (its bytes no longer hash to its name)", self.url(digest))
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # --- helpers ---------------------------------------------------------------

    def _size(self, key: str, doing: str = "cannot check an object") -> int | None:
        with self._errors(doing):
            try:
                info = self.fs.info(key)
            except FileNotFoundError:
                return None
        return int(info["size"]) if info.get("type", "file") == "file" else None

    def _download(self, digest: str, key: str, tmp: Path) -> None:
        """One streamed GET into ``tmp`` (fsspec's get_file: no whole object in memory)."""
        with self._errors(f"cannot read object {digest[:12]}"):
            try:
                self.fs.get_file(key, os.fspath(tmp))
            except FileNotFoundError:
                raise CorruptObjectError(digest, "missing", self.url(digest)) from None

    def _chunks(self, key: str) -> Iterator[bytes]:
        if self.protocol in _S3:
            yield from self._s3_stream(key)
            return
        # No read-ahead cache: each read is one ranged GET of read_size bytes.
        with self.fs.open(key, "rb", block_size=self.read_size, cache_type="none") as f:
            while chunk := f.read(self.read_size):
                yield chunk

    def _s3_stream(self, key: str) -> Iterator[bytes]:
        """One GET, read in chunks: ranged GETs cost a request each (and S3-compatible
        servers such as moto load the whole object for every range)."""
        from fsspec.asyn import sync

        bucket, path, _ = self.fs.split_path(key)
        response = sync(self.fs.loop, self.fs._call_s3, "get_object", Bucket=bucket, Key=path)
        body = response["Body"]
        try:
            while chunk := sync(self.fs.loop, body.read, self.read_size):
                yield chunk
        finally:
            body.close()

    def _put_options(self, size: int) -> dict:
        if self.protocol in _S3:
            return {"chunksize": max(self.part_size, -(-size // _MAX_PARTS)), "max_concurrency": self.max_concurrency}
        return {}

    def _put_by_rename(self, src: str | os.PathLike, key: str) -> None:
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
        try:
            self.fs.makedirs(self.fs._parent(tmp), exist_ok=True)
            self.fs.put_file(os.fspath(src), tmp)
            self.fs.makedirs(self.fs._parent(key), exist_ok=True)
            self.fs.mv(tmp, key)
        finally:
            try:
                self.fs.rm_file(tmp)  # a half-written object never stays behind
            except (FileNotFoundError, OSError):
                pass

    @contextmanager
    def _errors(self, doing: str, probing: bool = False):
        try:
            yield
        except StoreError:
            raise
        except FileNotFoundError as exc:
            if probing or _code(exc) == "NoSuchBucket":
                raise self._missing_bucket(doing) from exc
            raise
        except Exception as exc:
            raise self._error(exc, doing) from exc

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        """A failure said by its cause, with the fix for it."""
        code = _code(exc)
        names = {type(e).__name__ for e in _chain(exc)}
        if code == "NoSuchBucket":
            return self._missing_bucket(doing)
        if code in _CREDENTIAL_CODES or "NoCredentialsError" in names or isinstance(exc, PermissionError):
            why = f"the credentials were refused ({code})" if code else "no credentials were accepted"
            if self.protocol in _S3:
                fix = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may read and write this bucket"
            else:
                fix = f"check the credentials of {self.protocol}:// (the SDK's environment variables or profile) and their access to this location"
            return StoreError(f"{doing} in {self.location}: {why}", fix)
        if names & _UNREACHABLE or any(isinstance(e, (ConnectionError, TimeoutError)) for e in _chain(exc)):
            return StoreError(
                f"{doing}: cannot reach the object store {self.location}{self._endpoint()}",
                "check that the server is running and reachable"
                + (" (for an S3-compatible server, AWS_ENDPOINT_URL must be its address)" if self.protocol in _S3 else ""),
            )
        return StoreError(f"{doing} in {self.location}: {_first_line(exc)}", f"check {self.location} and the credentials used to reach it")

    def _missing_bucket(self, doing: str) -> StoreError:
        bucket = self.root.partition("/")[0]
        if self.protocol in _S3:
            return StoreError(
                f"{doing}: the bucket {bucket} of {self.location} does not exist{self._endpoint()}",
                f"create it: aws s3 mb s3://{bucket} (for an S3-compatible server, set AWS_ENDPOINT_URL to its address first)",
            )
        return StoreError(f"{doing}: {bucket} of {self.location} does not exist", f"create the bucket (or folder) {bucket}, or pass another --objects URL")

    def _endpoint(self) -> str:
        if self.protocol not in _S3:
            return ""
        endpoint = self._options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return f" (endpoint {_mask(endpoint)})" if endpoint else " (endpoint: AWS; set AWS_ENDPOINT_URL for another server)"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def _code(exc: BaseException) -> str | None:
    """The S3 error code (NoSuchBucket, AccessDenied, 403...) anywhere in the chain."""
    for e in _chain(exc):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    return None


def _mask(url: str) -> str:
    return re.sub(r"//[^/@]*:[^/@]*@", "//***@", url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return _mask(text[0]) if text else type(exc).__name__
