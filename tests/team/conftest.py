"""The team-store tests: real PostgreSQL and S3 servers (tests/services.py) for every module here."""

from tests.services import postgres, s3, store_backend  # noqa: F401
