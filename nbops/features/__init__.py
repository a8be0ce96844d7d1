"""The feature store: ``nbops.features.publish(df, "customer_stats", entity=..., timestamp=...)``,
``read("customer_stats:v3")`` and point-in-time ``training_set(entity_df, [...], timestamp=...)``.

Offline (``tables``, ``pit``): versioned tables as Parquet objects in the run
store, with schema checks and lineage. Online (``online``): the latest value
per entity materialized into SQLite or Redis for serving.

Contract between the halves (both read the same records): ``tables.open_features(store, near)``
→ (RunStore, FeatureStore); ``tables.resolve(ref, features=fs)`` → the version dict
(name, version, entity, timestamp, columns, rows, max_ts, sha256, ...);
``tables.parquet_path(rs, version)`` → a local Parquet file of it. ``show`` adds
``online.freshness(rs, name)`` (a dict) under "online" when ``online.py`` has it.
"""

from nbops.features.pit import training_set
from nbops.features.tables import FeatureRef, diff, list_tables, parse_ref, publish, read, show

__all__ = ["FeatureRef", "diff", "list_tables", "parse_ref", "publish", "read", "show", "training_set"]

try:  # the online half lands in its own file (nbops/features/online.py)
    from nbops.features.online import entity_of, materialize, online
except ImportError:  # pragma: no cover - before it exists
    pass
else:
    __all__ += ["entity_of", "materialize", "online"]
