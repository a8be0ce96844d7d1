"""The model registry's routes for the lab: list, show, history, promote, roll back, register.

Thin like every route: the body is checked (types, lengths, names) here, then
one call into ``nbops.models``; the store is the one of the notebook named by
``path`` (found as every surface finds it). A failed promotion gate is the
registry's ``GateError``: 409 with the message naming both values.

    GET  /nbops/models?path=NB                      {store, models}
    GET  /nbops/models/NAME?path=NB                 {name, aliases, versions, store}
    GET  /nbops/models/NAME/history?path=NB         {name, history}
    POST /nbops/models/NAME/promote   {path, version, alias, message?, require?, better_than?}
    POST /nbops/models/NAME/rollback  {path, alias, message?}
    POST /nbops/models/register       {path, run, stage, var, name, message?}   -> 201, the new version
"""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.web
from jupyter_server.utils import url_path_join

from nbops.errors import UsageError
from nbops.server.handlers import NbopsHandler

__all__ = ["model_routes"]

# A "why" for the history, not an essay; a gate is one comparison.
MAX_MESSAGE = 2000
MAX_GATES = 20
MAX_GATE_CHARS = 200


def _registry() -> Any:
    import nbops.models.registry  # on first request, as handlers._api: keeps server start-up light

    return nbops.models.registry


def _text(body: dict, key: str, *, required: bool = True, limit: int = 200, example: str = "") -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise UsageError(f"'{key}' is missing", f"send {example or key!r}")
        return None
    if not isinstance(value, str):
        raise UsageError(f"'{key}' must be a string, not {type(value).__name__}", f"send {example or key!r}")
    if len(value) > limit:
        raise UsageError(f"'{key}' is {len(value)} characters, over the {limit} allowed", f"shorten '{key}'")
    return value


def _version(body: dict) -> int:
    value = body.get("version")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"'version' must be a version number (1, 2, ...), not {value!r}", 'send e.g. {"version": 2}')
    return value


def _gates(body: dict) -> list[str]:
    """``require``: a list of conditions such as ``accuracy>=0.8`` (the registry reads them)."""
    value = body.get("require") or []
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise UsageError("'require' must be a list of conditions", 'send e.g. {"require": ["accuracy>=0.8"]}')
    if len(value) > MAX_GATES or any(len(g) > MAX_GATE_CHARS for g in value):
        raise UsageError(f"'require' takes at most {MAX_GATES} conditions of {MAX_GATE_CHARS} characters", "send fewer, shorter gates")
    return [g for g in value if g.strip()]


class _ModelHandler(NbopsHandler):
    def model_name(self, name: str) -> str:
        return _registry().validate_name(name)


class ModelsHandler(_ModelHandler):
    """``GET /nbops/models?path=``: the registered models of the notebook's store, and the store."""

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.query_path()
        self.write_json(await asyncio.to_thread(_models_answer, path))


class ModelHandler(_ModelHandler):
    """``GET /nbops/models/<name>?path=``: its versions (metrics, source run) and aliases."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        path = self.query_path()
        name = self.model_name(name)
        self.write_json(await asyncio.to_thread(_registry().show, name, near=path))


class HistoryHandler(_ModelHandler):
    """``GET /nbops/models/<name>/history?path=``: every alias move, oldest first."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        path = self.query_path()
        name = self.model_name(name)
        history = await asyncio.to_thread(_registry().history, name, near=path)
        self.write_json({"name": name, "history": history})


class PromoteHandler(_ModelHandler):
    """``POST /nbops/models/<name>/promote``: move an alias to a version once its gates hold (409 when one fails)."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        body = await self.json_body()
        path = self.notebook_path(body.get("path"))
        name = self.model_name(name)
        version = _version(body)
        alias = _text(body, "alias", example='{"alias": "production"}')
        message = _text(body, "message", required=False, limit=MAX_MESSAGE)
        require = _gates(body)
        better_than = _text(body, "better_than", required=False, example='{"better_than": "production"}')
        reg = _registry()
        moved = await asyncio.to_thread(reg.promote, name, version, alias, message=message, require=require, better_than=better_than, near=path)
        self.write_json(moved)


class RollbackHandler(_ModelHandler):
    """``POST /nbops/models/<name>/rollback``: the alias goes back to the version it held before."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        body = await self.json_body()
        path = self.notebook_path(body.get("path"))
        name = self.model_name(name)
        alias = _text(body, "alias", example='{"alias": "production"}')
        message = _text(body, "message", required=False, limit=MAX_MESSAGE)
        self.write_json(await asyncio.to_thread(_registry().rollback, name, alias, message=message, near=path))


class RegisterHandler(ModelHandler):
    """``POST /nbops/models/register``: a stage output of a run becomes a new version of a model.

    A ModelHandler too, so ``GET /nbops/models/register`` still shows a model
    that happens to be named "register"."""

    @tornado.web.authenticated
    async def get(self, name: str = "register") -> None:
        await super().get(name)

    @tornado.web.authenticated
    async def post(self) -> None:
        body = await self.json_body()
        path = self.notebook_path(body.get("path"))
        from nbops.history import validate_stage_name
        from nbops.store import validate_run_id

        run_id = validate_run_id(_text(body, "run", example='{"run": "20261130-013000-ab12cd"}'))
        stage = validate_stage_name(_text(body, "stage", example='{"stage": "train"}'))
        var = _text(body, "var", example='{"var": "model"}')
        if not var.isidentifier():
            raise UsageError(f"{var!r} is not a variable name", "send the name of the stage output, e.g. model")
        name = self.model_name(_text(body, "name", example='{"name": "churn"}'))
        message = _text(body, "message", required=False, limit=MAX_MESSAGE)
        version = await asyncio.to_thread(_register, run_id, stage, var, name, message, path)
        self.write_json(version, status=201)


def _models_answer(path) -> dict[str, Any]:
    from nbops.server.runs import describe_store

    return {"store": describe_store(path), "models": _registry().list_models(near=path)}


def _register(run_id: str, stage: str, var: str, name: str, message: str | None, path) -> dict[str, Any]:
    reg = _registry()
    return reg.version_json(reg.register(run_id, stage, var, name, message=message, near=path))


def model_routes(base_url: str) -> list[tuple[str, type]]:
    """The routes, in the order tornado tries them (``register`` before a model's name)."""
    base = url_path_join(base_url, "nbops", "models")
    part = r"([^/]+)"
    return [
        (base, ModelsHandler),
        (url_path_join(base, "register"), RegisterHandler),
        (url_path_join(base, part), ModelHandler),
        (url_path_join(base, part, "history"), HistoryHandler),
        (url_path_join(base, part, "promote"), PromoteHandler),
        (url_path_join(base, part, "rollback"), RollbackHandler),
    ]
