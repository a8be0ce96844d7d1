"""Real servers for the team-store benchmarks, started and stopped as the tests do (tests/services.py).

``postgres()`` reuses the test harness's ``PostgresServer`` (initdb in a temp folder, as
the ``postgres`` user when run as root, scram passwords, fsync off), with PostgreSQL's
default 128 MB of shared buffers instead of the tests' 32 MB: the benchmarks read
hundreds of MB of records. ``s3()`` runs moto's server in a *child process* (the tests
run it in a thread): here both sides of a comparison move a gigabyte, and a server in
the benchmark's own process would share its GIL with the client it is timed against.
It sets ``AWS_ENDPOINT_URL`` and keys in ``os.environ`` for the block, as the fixture
does, so CLI subprocesses and kernels reach it. Both always stop, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.services import AWS_KEYS, PostgresServer, S3Server, _wait_for_port, find_pg_bin, free_port  # noqa: E402

__all__ = ["postgres", "s3", "server_rss_mb", "PostgresServer", "S3Server"]


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer]:
    bindir = find_pg_bin()
    if bindir is None or not (bindir / "initdb").exists():
        raise SystemExit("PostgreSQL server binaries not found: run `bash .ci/install-services.sh` (or set NBOPS_PG_BIN)")
    root = Path(tempfile.mkdtemp(prefix="nbops-bench-pg-"))
    server = PostgresServer(bindir, root, free_port())
    try:
        server.init()
        with (server.data / "postgresql.conf").open("a") as conf:
            conf.write("shared_buffers = 128MB\n")  # later lines win: PostgreSQL's default, not the tests' 32MB
        server.start()
        yield server
    finally:
        try:
            server.stop()
        except RuntimeError:
            with contextlib.suppress(RuntimeError):
                server._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(server.data))
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def s3() -> Iterator[S3Server]:
    """moto's S3 server in a child process; an ``S3Server`` (for ``client()``/``new_bucket()``) pointing at it."""
    server = S3Server(free_port())
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(server.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    saved = {key: os.environ.get(key) for key in AWS_KEYS}
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    os.environ.update(server.env)
    try:
        _wait_for_port(server.port, timeout=30)
        server.pid = proc.pid  # to watch its memory: moto keeps every object in it
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def server_rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
