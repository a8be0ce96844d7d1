"""Thin HTTP routes over ``nbops.api``: validate, one library call, JSON out.

Every path a request names is relative to the server's root directory and must
stay inside it; run ids and stage names are checked by the library's own
validators before they reach the run store.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from nbops.errors import NbopsError, NotFoundError, UsageError
from nbops.text import to_json_text

__all__ = ["setup_handlers", "status_for", "MAX_BODY_BYTES", "MAX_JSON_DEPTH"]

_EXECUTOR_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# A notebook with large outputs fits well inside; more is a mistake or an attack,
# refused before it is parsed.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Deeper than any notebook nests; a deeper body would exhaust the recursion of
# whatever walks it later (validation, analysis).
MAX_JSON_DEPTH = 200


class BodyTooLarge(UsageError):
    """A request body over MAX_BODY_BYTES."""

    http_status = 413


def status_for(error: NbopsError) -> int:
    """The HTTP status of a library error (the one place that maps them)."""
    status = getattr(error, "http_status", 400)
    # RunFailed says 200 for the CLI's sake; on a request that failed it is a conflict.
    return 409 if status < 400 else status


def _api() -> Any:
    import nbops.api  # imported on first request: keeps server start-up light

    return nbops.api


def _runs() -> Any:
    import nbops.server.runs  # as _api: the store stack loads on first request

    return nbops.server.runs


class NbopsHandler(APIHandler):
    """Base: JSON errors in the library's shape, paths confined to the root."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, NbopsError):
            self.set_status(status_for(error))
            self.set_header("Content-Type", "application/json")
            self.finish(to_json_text(error.to_json()))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, NbopsError) and status_for(value) < 500:
            # The caller's mistake, answered with a message: not a server fault.
            self.log.info("nbops: %s %s -> %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)

    @property
    def root_dir(self) -> Path:
        return Path(self.settings["server_root_dir"]).expanduser().resolve()

    def notebook_path(self, value: Any) -> Path:
        """The absolute notebook path for a root-relative ``value``; refuses escapes."""
        if not isinstance(value, str) or not value.strip():
            raise UsageError("'path' is missing", "send the notebook path relative to the server root, e.g. 'work/churn.ipynb'")
        if "\x00" in value:
            raise UsageError("'path' is not a valid path", "send a plain relative path")
        rel = PurePosixPath(value.replace("\\", "/"))
        if ".." in rel.parts:
            raise UsageError(f"path {value!r} contains '..'", "send a path inside the server root without '..'")
        root = self.root_dir
        full = Path(value).resolve() if rel.is_absolute() else (root / rel).resolve()
        if full != root and root not in full.parents:
            raise UsageError(f"path {value!r} is outside the server root", "open a notebook inside the Jupyter root directory")
        if full.suffix != ".ipynb":
            raise UsageError(f"path {value!r} is not a notebook", "send the path of an .ipynb file")
        if not full.is_file():
            raise NotFoundError(f"notebook {value!r} does not exist", "save the notebook first, or check the path")
        return full

    async def json_body(self) -> dict:
        """The body as a JSON object: size and depth checked, parsed off the event loop."""
        raw = self.request.body or b""
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge(
                f"the request body is {len(raw) / 2**20:.1f} MB, over the {MAX_BODY_BYTES // 2**20} MB limit",
                "send a smaller notebook (clear large outputs), or leave 'content' out so the saved file is read",
            )
        body = await asyncio.to_thread(_parse_json, raw)
        if not isinstance(body, dict):
            raise UsageError("the request body must be a JSON object", 'send e.g. {"path": "nb.ipynb"}')
        return body

    def query_path(self) -> Path:
        return self.notebook_path(self.get_query_argument("path", None))

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(to_json_text(data))


class GraphHandler(NbopsHandler):
    """``POST /nbops/graph`` {path, content?}: the stage graph (unsaved edits welcome)."""

    @tornado.web.authenticated
    async def post(self) -> None:
        body = await self.json_body()
        path = self.notebook_path(body.get("path"))
        content = body.get("content")
        if content is not None and not isinstance(content, dict):
            raise UsageError("'content' must be the notebook JSON object", "send the nbformat v4 notebook as an object, or leave it out")
        # Pure analysis: off the event loop so a big notebook cannot stall the server.
        graph = await asyncio.to_thread(_api().graph, path, content)
        self.write_json(graph)

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.query_path()
        graph = await asyncio.to_thread(_api().graph, path, None)
        self.write_json(graph)


class RunsHandler(NbopsHandler):
    """``GET /nbops/runs?path=`` lists runs; ``POST`` {path, params, executor} starts one."""

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.query_path()
        limit_arg = self.get_query_argument("limit", "50")
        if not limit_arg.isdigit() or not 0 < int(limit_arg) <= 1000:
            raise UsageError(f"limit {limit_arg!r} is not a number from 1 to 1000", "send e.g. ?limit=20")
        # Store reads wait on SQLite (a writer may hold it) or the network: off the event loop.
        self.write_json(await asyncio.to_thread(_runs().runs_answer, path, int(limit_arg)))

    @tornado.web.authenticated
    async def post(self) -> None:
        body = await self.json_body()
        path = self.notebook_path(body.get("path"))
        params = body.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise UsageError("'params' must be an object of name: value", 'send e.g. {"n_rows": 1000}')
        executor = body.get("executor") or "local"
        if not isinstance(executor, str) or not _EXECUTOR_RE.match(executor):
            raise UsageError(f"executor {executor!r} is not an executor name", "send 'local' or 'ray'")
        # Returns once the run is recorded (the run goes on in a thread of this
        # process); preparing it reads and hashes files, so off the event loop.
        run_id = await asyncio.to_thread(_api().start_run, path, params, executor=executor)
        store = await asyncio.to_thread(_runs().describe_store, path)
        self.write_json({"id": run_id, "store": store}, status=201)


class PlanHandler(NbopsHandler):
    """``GET /nbops/plan?path=``: what a run would do now, and why (a dry run).

    Nothing runs and nothing is written: the panel asks after each save to mark
    the stages an edit made stale.
    """

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.query_path()
        # Hashes code, inputs and the environment: off the event loop.
        plan = await asyncio.to_thread(_api().plan_run, path)
        self.write_json(plan)


class RunHandler(NbopsHandler):
    """``GET /nbops/runs/<id>?path=``: one run with its stages, its author and its store."""

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        path = self.query_path()
        _api().validate_run_id(run_id)
        self.write_json(await asyncio.to_thread(_runs().run_answer, run_id, path))


class StoreHandler(NbopsHandler):
    """``GET /nbops/store?path=``: the run store of a notebook (settings resolved as the CLI does; no password)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.query_path()
        self.write_json(await asyncio.to_thread(_runs().describe_store, path))


class StageNotebookHandler(NbopsHandler):
    """``GET /nbops/runs/<id>/stages/<stage>/notebook?path=``: the executed notebook JSON.

    The run store is hidden (``.nbops/``), out of the Contents API's reach, so
    the lab gets the notebook here and shows it in a read-only view.
    """

    @tornado.web.authenticated
    async def get(self, run_id: str, stage: str) -> None:
        path = self.query_path()
        api = _api()
        api.validate_run_id(run_id)
        api.validate_stage_name(stage)
        # stage_notebook resolves links and refuses a file outside the store.
        text = await asyncio.to_thread(_read_stage_notebook, api, run_id, stage, path)
        self.set_header("Content-Type", "application/json")
        self.finish(text)


def _read_stage_notebook(api: Any, run_id: str, stage: str, path: Path) -> str:
    notebook = Path(api.stage_notebook(run_id, stage, path=path))
    try:
        return notebook.read_text(encoding="utf-8")
    except OSError:
        raise NotFoundError(f"the executed notebook of stage {stage!r} in run {run_id} is missing", "rerun the stage") from None


def _parse_json(raw: bytes) -> Any:
    """JSON of a request body, refusing nesting deeper than MAX_JSON_DEPTH (checked without recursion)."""
    too_deep = UsageError(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", "send a notebook JSON object; flatten deeply nested outputs")
    try:
        body = json.loads(raw or b"null")
    except RecursionError:  # the parser's own stack ran out: deep beyond doubt
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"the request body is not valid JSON: {exc}", "send a JSON object") from None
    stack = [(body, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise too_deep
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return body


def setup_handlers(web_app: tornado.web.Application) -> None:
    base = url_path_join(web_app.settings["base_url"], "nbops")
    part = r"([^/]+)"
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "graph"), GraphHandler),
            (url_path_join(base, "plan"), PlanHandler),
            (url_path_join(base, "store"), StoreHandler),
            (url_path_join(base, "runs"), RunsHandler),
            (url_path_join(base, "runs", part), RunHandler),
            (url_path_join(base, "runs", part, "stages", part, "notebook"), StageNotebookHandler),
        ],
    )
