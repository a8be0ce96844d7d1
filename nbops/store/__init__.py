"""The run store: SQLite metadata and content-addressed artifacts."""

from nbops.store.location import open_store, store_root
from nbops.store.objects import ObjectStore, sha256_file
from nbops.store.run_store import RUN_ID_RE, RUN_STATUSES, STAGE_STATUSES, RunStore, iso, new_run_id, validate_run_id

__all__ = [
    "ObjectStore",
    "RUN_ID_RE",
    "RUN_STATUSES",
    "RunStore",
    "STAGE_STATUSES",
    "iso",
    "new_run_id",
    "open_store",
    "store_root",
    "sha256_file",
    "validate_run_id",
]
