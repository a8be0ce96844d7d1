"""The real servers every team-store test uses (tests/services.py) work as a real deployment would."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from tests.services import postgres, s3, store_backend  # noqa: F401


def test_new_database_accepts_tables(postgres):  # noqa: F811
    url = postgres.new_database()
    assert url.startswith(f"postgresql://nbops:nbops-secret@127.0.0.1:{postgres.port}/")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE runs (id text PRIMARY KEY)")
        conn.execute("INSERT INTO runs VALUES ('r1')")
        assert conn.execute("SELECT id FROM runs").fetchall() == [("r1",)]
    # Each database is fresh: the table is not in the next one.
    with psycopg.connect(postgres.new_database()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'runs'").fetchone() == (0,)


def test_wrong_password_is_refused(postgres):  # noqa: F811
    url = postgres.new_database()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url_with(url, "nbops", "wrong"), connect_timeout=10)


def test_read_only_role_reads_but_cannot_write(postgres):  # noqa: F811
    url = postgres.new_database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE before (x int)")
        conn.execute("INSERT INTO before VALUES (1)")
    reader_url = postgres.create_role("reader_" + os.urandom(4).hex(), "reader-pw", read_only_on=url)
    with psycopg.connect(url) as conn:  # created after the grant: default privileges cover it
        conn.execute("CREATE TABLE after (x int)")
    with psycopg.connect(reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT x FROM before").fetchall() == [(1,)]
        assert conn.execute("SELECT count(*) FROM after").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO before VALUES (2)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE mine (x int)")


def test_postgres_stop_and_start(postgres):  # noqa: F811
    url = postgres.new_database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (x int)")
    with postgres.stopped():
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=5)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_s3fs_uses_the_endpoint_from_the_environment(s3):  # noqa: F811
    import s3fs

    assert os.environ["AWS_ENDPOINT_URL"] == s3.endpoint
    bucket = s3.new_bucket()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)  # no arguments: endpoint and keys from the environment
    fs.pipe(f"{bucket}/objects/a", b"hello")
    assert fs.cat(f"{bucket}/objects/a") == b"hello"
    # Over real HTTP: boto3 with the explicit endpoint sees what s3fs wrote.
    assert s3.client().get_object(Bucket=bucket[5:], Key="objects/a")["Body"].read() == b"hello"
    # A child process inherits the environment and reaches the same server.
    code = f"import s3fs; print(s3fs.S3FileSystem().cat('{bucket}/objects/a').decode())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "hello", out.stderr


def test_s3_stop_and_start(s3):  # noqa: F811
    import botocore.exceptions

    bucket = s3.new_bucket()[5:]
    s3.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    with s3.stopped():
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            s3.client().head_bucket(Bucket=bucket)
    # moto keeps buckets in the process, not the server: they come back with it.
    assert s3.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_store_backend_settings(store_backend):  # noqa: F811
    if store_backend.name == "sqlite":
        assert (store_backend.store, store_backend.objects, store_backend.env, store_backend.cli_args) == (None, None, {}, [])
        return
    assert store_backend.env == {"NBOPS_STORE": store_backend.store, "NBOPS_OBJECTS": store_backend.objects}
    with psycopg.connect(store_backend.store) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    import fsspec

    fs, path = fsspec.core.url_to_fs(store_backend.objects)
    fs.makedirs(path, exist_ok=True)  # the objects folder of pg-file is left for the store to create
    fs.pipe(f"{path}/probe", b"x")
    assert fs.cat(f"{path}/probe") == b"x"
    assert store_backend.objects.startswith({"pg-s3": "s3://", "pg-file": "file:///"}[store_backend.name])
