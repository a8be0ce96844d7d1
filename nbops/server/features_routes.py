"""The feature store's routes for the lab: the tables of a notebook's store, and one table.

Read-only and thin: the store is the one of the notebook named by ``path``;
freshness (last materialized, lag behind the offline table) comes from the
store's records (``nbops.features.online.freshness``): the online store itself
is not contacted, so a slow or absent Redis never stalls the panel.

    GET /nbops/features?path=NB           {store, tables: [{name, entity, timestamp, latest, versions, ..., online}]}
    GET /nbops/features/TABLE?path=NB     nbops.features.show: versions, the latest's lineage, online freshness
                                          (TABLE may name a version: customer_stats:v2)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.utils import url_path_join

from nbops.server.handlers import NbopsHandler

__all__ = ["feature_routes"]


def _features() -> Any:
    import nbops.features  # on first request, as handlers._api: keeps server start-up light

    return nbops.features


class FeatureTablesHandler(NbopsHandler):
    """``GET /nbops/features?path=``: every feature table with its online freshness, and the store."""

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.query_path()
        self.write_json(await asyncio.to_thread(_tables_answer, path))


class FeatureTableHandler(NbopsHandler):
    """``GET /nbops/features/<table>?path=``: its versions (rows, entities, time range, source run) and freshness."""

    @tornado.web.authenticated
    async def get(self, ref: str) -> None:
        path = self.query_path()
        features = _features()
        features.parse_ref(ref)  # a bad name is a 400 before the store is opened
        self.write_json(await asyncio.to_thread(features.show, ref, near=path))


def _tables_answer(path: Path) -> dict[str, Any]:
    from nbops.features.online import freshness
    from nbops.features.tables import open_features
    from nbops.server.runs import describe_store

    tables = _features().list_tables(near=path)  # [] without a store: asking creates none
    if tables:
        rs, _ = open_features(near=path)  # one store for every table's freshness
        tables = [t | {"online": freshness(rs, t["name"])} for t in tables]
    return {"store": describe_store(path), "tables": tables}


def feature_routes(base_url: str) -> list[tuple[str, type]]:
    base = url_path_join(base_url, "nbops", "features")
    return [(base, FeatureTablesHandler), (url_path_join(base, r"([^/]+)"), FeatureTableHandler)]
