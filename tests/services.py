"""Real servers for the team-store tests: PostgreSQL and an S3-compatible HTTP server.

Test modules import the fixtures they use (all three when they use ``store_backend``,
which asks pytest for the other two only when a backend needs them)::

    from tests.services import postgres, s3, store_backend  # noqa: F401

``postgres`` (session): a PostgreSQL from Debian's ``postgresql`` package
(``/usr/lib/postgresql/*/bin``, 15 preferred; ``NBOPS_PG_BIN`` overrides), ``initdb`` in a
temp folder (owned by the ``postgres`` user when the tests run as root, since initdb
refuses root), listening on 127.0.0.1 and a free port plus a unix socket in the temp
folder. Every connection, local or TCP, needs a scram-sha-256 password, so a wrong
password fails as it would on a real server. The superuser is ``nbops`` /
``nbops-secret``. fsync and synchronous commit are off: the data is thrown away.

``s3`` (session): moto's server mode (``moto.server.ThreadedMotoServer``) over real HTTP
on 127.0.0.1 and a free port, in a thread of the pytest process. For the session,
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
``AWS_DEFAULT_REGION`` are set in ``os.environ`` (``AWS_PROFILE`` and
``AWS_SESSION_TOKEN`` are removed) so child processes (CLI subprocesses, kernels,
Ray workers started later) reach the same server; they are restored at the end.
botocore >= 1.34 (and so aiobotocore, which s3fs uses) reads ``AWS_ENDPOINT_URL``
itself: ``s3fs.S3FileSystem()`` with no arguments talks to moto
(tests/store/test_services.py checks it). Because moto keeps its buckets in
module-global backends of the process, not in the HTTP server, ``s3.stop()`` then
``s3.start()`` brings back the same buckets and objects; while stopped, connections
to the port are refused.

``redis`` (session): Debian's ``redis-server`` (``/usr/bin/redis-server``; ``NBOPS_REDIS_SERVER``
overrides) on 127.0.0.1 and a free port, in a temp folder, no persistence; ``redis.url`` is
``redis://127.0.0.1:PORT/0``, ``redis.new_db()`` a URL of another logical database, emptied.
``stop()``/``start()`` may be called again (the data is lost: nothing is saved).

``store_backend`` (function, parametrized ``sqlite`` / ``pg-s3`` / ``pg-file``): a
``Backend`` with a fresh database and a fresh bucket (pg-s3) or temp folder (pg-file) per
test; the ``objects`` folder itself is not created: that is the store's job.

Importing this module starts nothing; the servers start on first use and stop at the
end of the session. Without PostgreSQL binaries (or moto) the fixtures skip, unless
``NBOPS_REQUIRE_SERVICES`` is set, when they fail: ``bash .ci/install-services.sh``
installs PostgreSQL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

ADMIN_USER = "nbops"
ADMIN_PASSWORD = "nbops-secret"
HOST = "127.0.0.1"
AWS_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN")
# Fast and disposable; 200 connections: 16 concurrent runner processes, readers and
# the tests' own connections, each with a pool.
PG_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "200",
    "log_min_messages": "warning",
    "log_statement": "none",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _unavailable(what: str) -> None:
    """Skip (a developer without the server) or fail (CI, NBOPS_REQUIRE_SERVICES set)."""
    if os.environ.get("NBOPS_REQUIRE_SERVICES"):
        pytest.fail(f"{what} (NBOPS_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(what)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def find_pg_bin() -> Path | None:
    """The PostgreSQL server binaries: NBOPS_PG_BIN, else 15, else the newest installed."""
    if os.environ.get("NBOPS_PG_BIN"):
        return Path(os.environ["NBOPS_PG_BIN"])
    bindirs = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    bindirs.sort(key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)
    preferred = [b for b in bindirs if b.parent.name == "15"]
    return (preferred or bindirs[-1:] or [None])[0]


class PostgresServer:
    """One throwaway PostgreSQL cluster; ``start()``/``stop()`` may be called again for fault tests."""

    def __init__(self, bindir: Path, root: Path, port: int):
        self.bindir = bindir
        self.root = root
        self.port = port
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self.log = root / "postgres.log"
        self.admin_url = self.url_with("postgres", ADMIN_USER, ADMIN_PASSWORD)
        self.running = False
        # initdb and the server refuse to run as root; as anyone else they run as that user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run([*self._as, str(self.bindir / tool), *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}\n{log}")

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(ADMIN_PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            for path in (self.socket_dir, pwfile):
                shutil.chown(path, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", ADMIN_USER, f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"
        )  # fmt: skip
        pwfile.unlink()
        # Passwords everywhere, so wrong-password tests are real; only 127.0.0.1 over TCP.
        (self.data / "pg_hba.conf").write_text("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
        settings = {**PG_SETTINGS, "listen_addresses": f"'{HOST}'", "port": str(self.port), "unix_socket_directories": f"'{self.socket_dir}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/services.py\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))

    def start(self) -> None:
        """Start the server (no-op when running); returns once it accepts connections."""
        if not self.running:
            self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log))
            self.running = True

    def stop(self) -> None:
        """Stop the server (no-op when stopped): connections to the port are then refused."""
        if self.running:
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))
            self.running = False

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """``with postgres.stopped(): ...``: the server is down inside, up again after."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def url_with(self, db: str, user: str, password: str | None) -> str:
        """A postgresql:// URL on this server; ``db`` is a database name or a URL whose database is kept."""
        if "://" in db:
            db = urlsplit(db).path.lstrip("/")
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        return f"postgresql://{auth}@{HOST}:{self.port}/{db}"

    def _admin(self, db: str = "postgres"):
        import psycopg

        return psycopg.connect(self.url_with(db, ADMIN_USER, ADMIN_PASSWORD), autocommit=True, connect_timeout=10)

    def new_database(self, name: str | None = None) -> str:
        """Create an empty database (owned by the superuser); its URL, password included."""
        from psycopg import sql

        name = name or _unique("nbops_")
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_with(name, ADMIN_USER, ADMIN_PASSWORD)

    def create_role(self, name: str, password: str, read_only_on: str | None = None) -> str:
        """A login role; with ``read_only_on`` (a database URL or name) it may read that database
        and nothing else: CONNECT, USAGE on schema public, SELECT on its tables, now and on
        tables the superuser creates later. Returns the role's URL (for that database or postgres)."""
        from psycopg import sql

        role = sql.Identifier(name)
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password)))
        if read_only_on is None:
            return self.url_with("postgres", name, password)
        db = urlsplit(read_only_on).path.lstrip("/") if "://" in read_only_on else read_only_on
        with self._admin(db) as conn:
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), role))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(role))
            # Default privileges follow the creator: the stores under test write as the superuser.
            conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}").format(sql.Identifier(ADMIN_USER), role))
        return self.url_with(db, name, password)


class S3Server:
    """moto's S3-compatible server on 127.0.0.1; buckets live in the process, so they survive stop()/start()."""

    def __init__(self, port: int):
        self.port = port
        self.endpoint = f"http://{HOST}:{port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Serve on the same port again (no-op when running)."""
        if self._server is None:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
            server.start()
            self._server = server

    def stop(self) -> None:
        """Close the port (no-op when stopped); requests then fail with connection refused."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """``with s3.stopped(): ...``: the server is down inside, up again after."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextlib.contextmanager
    def credentials_checked(self) -> Iterator[tuple[str, str]]:
        """moto checks S3 credentials only when told to: inside, an IAM user that may use S3
        exists (its key id and secret are yielded) and every request must be signed by a known key.
        The server is shared by the session: auth is always switched off again."""
        import json
        import urllib.request

        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=self.env["AWS_DEFAULT_REGION"])
        user = _unique("nbops-")
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]

        def auth(count: str) -> None:
            request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=count.encode(), method="POST")
            request.add_header("Content-Type", "application/octet-stream")
            urllib.request.urlopen(request, timeout=10).read()

        auth("0")
        try:
            yield key["AccessKeyId"], key["SecretAccessKey"]
        finally:
            auth("inf")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.env["AWS_DEFAULT_REGION"])

    def new_bucket(self, name: str | None = None) -> str:
        """Create an empty bucket; its ``s3://name`` URL."""
        name = name or _unique("nbops-")
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[PostgresServer]:
    bindir = find_pg_bin()
    if bindir is None or not (bindir / "initdb").exists():
        _unavailable(f"PostgreSQL server binaries not found in {bindir or '/usr/lib/postgresql/*/bin'}: run `bash .ci/install-services.sh`")
    # Not under pytest's basetemp: the postgres user must reach it and the socket path must stay short.
    root = Path(tempfile.mkdtemp(prefix="nbops-pg-"))
    server = PostgresServer(bindir, root, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        except RuntimeError:  # never leave a server behind: stop without the checkpoint
            with contextlib.suppress(RuntimeError):
                server._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(server.data))
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        _unavailable("moto[server] is not installed: pip install -e '.[test]'")
    server = S3Server(free_port())
    saved = {key: os.environ.get(key) for key in AWS_KEYS}
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    os.environ.update(server.env)
    try:
        server.start()
        _wait_for_port(server.port)
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise


class RedisServer:
    """One throwaway redis-server; ``start()``/``stop()`` may be called again (the data does not survive)."""

    def __init__(self, binary: str, root: Path, port: int):
        self.binary = binary
        self.root = root
        self.port = port
        self.url = f"redis://{HOST}:{port}/0"
        self.log = root / "redis.log"
        self._proc: subprocess.Popen | None = None
        self._dbs = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (no-op when running); returns once it answers PING."""
        if self.running:
            return
        args = [self.binary, "--port", str(self.port), "--bind", HOST, "--dir", str(self.root), "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", str(self.log), "--databases", "64"]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self._answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (no-op when stopped): connections to the port are then refused."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """``with redis.stopped(): ...``: the server is down inside, up again after (empty)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def new_db(self) -> str:
        """The URL of a logical database no other caller of ``new_db`` got (1..63), emptied."""
        import redis as client

        self._dbs += 1
        if self._dbs > 63:
            raise RuntimeError("redis fixture: more than 63 databases asked for in one session")
        url = f"redis://{HOST}:{self.port}/{self._dbs}"
        with client.Redis.from_url(url) as conn:
            conn.flushdb()
        return url


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    binary = os.environ.get("NBOPS_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        _unavailable(f"redis-server not found ({binary}): apt-get install -y redis-server")
    try:
        import redis as _client  # noqa: F401
    except ImportError:
        _unavailable("the redis client is not installed: pip install -e '.[features]'")
    root = Path(tempfile.mkdtemp(prefix="nbops-redis-"))
    server = RedisServer(binary, root, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Backend:
    """One store configuration: ``store``/``objects`` are None for the embedded default
    (SQLite + ``.nbops`` beside the notebook); ``env`` carries them to subprocesses."""

    name: str
    store: str | None
    objects: str | None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cli_args(self) -> list[str]:
        """``--store URL --objects URL`` for the CLI (empty for sqlite)."""
        return [*(["--store", self.store] if self.store else []), *(["--objects", self.objects] if self.objects else [])]


BACKENDS = ["sqlite", "pg-s3", "pg-file"]


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def store_backend(request, tmp_path_factory) -> Backend:
    name = request.param
    if name == "sqlite":
        return Backend(name, None, None, {})
    # Asked for here, not as arguments, so sqlite-only runs start no server.
    store = request.getfixturevalue("postgres").new_database()
    if name == "pg-s3":
        objects = request.getfixturevalue("s3").new_bucket() + "/objects"
    else:
        objects = (tmp_path_factory.mktemp("shared") / "objects").as_uri()
    return Backend(name, store, objects, {"NBOPS_STORE": store, "NBOPS_OBJECTS": objects})
