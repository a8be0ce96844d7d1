"""The run store: records in SQLite or PostgreSQL, content-addressed objects in a folder or any fsspec URL."""

from nbops.store.config import StoreSettings, mask_url, resolve_settings
from nbops.store.location import open_store, store_exists, store_root, store_settings
from nbops.store.objects import ObjectStore, sha256_file
from nbops.store.run_store import RUN_ID_RE, RUN_STATUSES, STAGE_STATUSES, RunStore, current_user, iso, new_run_id, validate_run_id

__all__ = [
    "ObjectStore",
    "RUN_ID_RE",
    "RUN_STATUSES",
    "RunStore",
    "STAGE_STATUSES",
    "iso",
    "new_run_id",
    "StoreSettings",
    "current_user",
    "mask_url",
    "open_store",
    "resolve_settings",
    "store_exists",
    "store_settings",
    "store_root",
    "sha256_file",
    "validate_run_id",
]
