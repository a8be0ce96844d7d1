"""The schedules' routes for the lab: list a notebook's schedules, add one, show, pause, resume, run now, remove.

Thin like every route: the body is checked (types, lengths, names) here, then
one call into ``nbops.automate.schedules``; the store is the one of the
notebook named by ``path`` (found as every surface finds it). Notification
targets are shown masked (``nbops.automate.notify.mask_target``).

    GET    /nbops/schedules?path=NB        {store, schedules: [schedule]}  (this notebook's, each with
                                           ``next``: its next due time, and ``last``: its newest firing)
    POST   /nbops/schedules  {path, cron (+tz) | every | on_change | after, name?, params?, executor?,
                              notify?, notify_on?, debounce?}     -> 201 {schedule, firings, events, warnings}
    GET    /nbops/schedules/NAME?path=NB   {schedule (``next``: 5 due times), firings (last runs), events}
    POST   /nbops/schedules/NAME/pause  {path}   the schedule
    POST   /nbops/schedules/NAME/resume {path}   the schedule
    POST   /nbops/schedules/NAME/run-now {path}  -> 202 {name, key, status, message}
    DELETE /nbops/schedules/NAME?path=NB   {removed, notebook}

Run now never holds the request. The library's ``run_now`` queues a firing
(``manual:<id>``): a live scheduler (``nbops scheduler``, or the one the server
hosts when opted in) claims and runs it; with none live, ``run_now`` runs it
itself, so it is called in a thread of this server (as ``POST /nbops/runs``
runs a notebook) and the request is answered once the firing is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.utils import url_path_join

from nbops.errors import NbopsError, StoreError, UsageError
from nbops.server.handlers import _EXECUTOR_RE, NbopsHandler

__all__ = ["schedule_routes", "setup"]

MAX_TARGETS = 20
MAX_WATCH = 50
MAX_TEXT = 500
# Run now answers once its firing is recorded: the library checks the notebook
# (an analysis) first, which a loaded machine may take seconds over.
RUN_NOW_QUEUE_S = 30.0
RUN_NOW_LOOKBACK = 50

log = logging.getLogger("nbops.server")


def _lib() -> Any:
    import nbops.automate.schedules  # on first request, as handlers._api: keeps server start-up light

    return nbops.automate.schedules


def _text(body: dict, key: str, *, limit: int = MAX_TEXT) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UsageError(f"'{key}' must be a string, not {type(value).__name__}", f"send e.g. {_EXAMPLES.get(key, key)!r}")
    if len(value) > limit:
        raise UsageError(f"'{key}' is {len(value)} characters, over the {limit} allowed", f"shorten '{key}'")
    return value


def _strings(body: dict, key: str, *, limit: int) -> list[str] | None:
    value = body.get(key)
    if value is None or value == []:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in value):
        raise UsageError(f"'{key}' must be a list of strings", f"send e.g. {_EXAMPLES[key]}")
    if len(value) > limit:
        raise UsageError(f"'{key}' has {len(value)} items, over the {limit} allowed", f"send fewer '{key}'")
    return value


_EXAMPLES = {
    "cron": "0 3 * * *",
    "tz": "Europe/Berlin",
    "every": "10m",
    "after": "nightly",
    "name": "churn-nightly",
    "on_change": '{"on_change": ["data/*.csv"]}',
    "notify": '{"notify": ["https://hooks.example.com/nbops"]}',
    "notify_on": '{"notify_on": ["failure", "success"]}',
}


def schedule_name(name: str) -> str:
    """A schedule name from the URL or the body, checked before the store is opened."""
    if len(name) > 128:
        raise UsageError(f"the schedule name is {len(name)} characters, over the 128 allowed", "use a shorter name, e.g. churn-nightly")
    return _lib().validate_schedule_name(name)


def add_request(body: dict) -> dict[str, Any]:
    """The keyword arguments of ``schedules.add`` (less the notebook) from a POST body."""
    from nbops.automate.triggers import make_trigger

    debounce = body.get("debounce")
    if debounce is not None and (isinstance(debounce, bool) or not isinstance(debounce, (int, float, str))):
        raise UsageError("'debounce' must be seconds", 'send e.g. {"debounce": 2}')
    trigger = make_trigger(
        cron=_text(body, "cron"),
        tz=_text(body, "tz"),
        every=_text(body, "every", limit=40),
        on_change=_strings(body, "on_change", limit=MAX_WATCH),
        after=_text(body, "after", limit=128),
        debounce=debounce,
    )
    name = _text(body, "name", limit=128)
    params = body.get("params") or {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise UsageError("'params' must be an object of name: value", 'send e.g. {"params": {"n_rows": 1000}}')
    executor = body.get("executor") or "local"
    if not isinstance(executor, str) or not _EXECUTOR_RE.match(executor):
        raise UsageError(f"executor {executor!r} is not an executor name", "send 'local' or 'ray'")
    return {
        "trigger": trigger,
        "name": None if name is None else schedule_name(name),
        "params": params,
        "executor": executor,
        "notify": _strings(body, "notify", limit=MAX_TARGETS) or [],
        "notify_on": _strings(body, "notify_on", limit=4) or [],
    }


class SchedulesHandler(NbopsHandler):
    """``GET /nbops/schedules?path=``: the notebook's schedules; ``POST``: add one."""

    @tornado.web.authenticated
    async def get(self) -> None:
        path = self.query_path()
        self.write_json(await asyncio.to_thread(_list_answer, path))

    @tornado.web.authenticated
    async def post(self) -> None:
        body = await self.json_body()
        path = self.notebook_path(body.get("path"))
        request = add_request(body)
        self.write_json(await asyncio.to_thread(_lib().add, path, request.pop("trigger"), **request), status=201)


class ScheduleHandler(NbopsHandler):
    """``GET /nbops/schedules/<name>?path=``: next firings, last runs, events; ``DELETE``: remove it."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        path = self.query_path()
        name = schedule_name(name)
        self.write_json(await asyncio.to_thread(_lib().show, name, near=path))

    @tornado.web.authenticated
    async def delete(self, name: str) -> None:
        path = self.query_path()
        name = schedule_name(name)
        self.write_json(await asyncio.to_thread(_lib().remove, name, near=path))


class ScheduleActionHandler(NbopsHandler):
    """``POST /nbops/schedules/<name>/(pause|resume|run-now)`` {path}."""

    @tornado.web.authenticated
    async def post(self, name: str, action: str) -> None:
        body = await self.json_body()
        path = self.notebook_path(body.get("path"))
        name = schedule_name(name)
        if action == "run-now":
            self.write_json(await _run_now(name, path), status=202)
            return
        call = _lib().pause if action == "pause" else _lib().resume
        self.write_json(await asyncio.to_thread(call, name, near=path))


def _list_answer(path: Path) -> dict[str, Any]:
    """The schedules of the notebook at ``path`` (a store may hold other notebooks' too), and the store."""
    from nbops.server.runs import describe_store

    mine = str(path.resolve())
    return {"store": describe_store(path), "schedules": [s for s in _lib().ls(near=path) if s["notebook"] == mine]}


async def _run_now(name: str, path: Path) -> dict[str, Any]:
    """Fire ``name`` once without holding the request.

    The library's ``run_now`` queues a firing; with a live scheduler that is all
    it does, with none it runs the firing itself and returns when the run ends.
    So it runs in a thread of its own, and the answer comes as soon as the new
    firing is in the store (a refusal, such as a broken notebook, is raised)."""
    lib = _lib()
    await asyncio.to_thread(lib.show, name, near=path)  # 404 before anything starts
    ss = await asyncio.to_thread(lib.open_schedules, None, path)
    before = {f["key"] for f in await asyncio.to_thread(ss.firings, name, limit=RUN_NOW_LOOKBACK)}
    done = threading.Event()
    failure: list[BaseException] = []

    def fire() -> None:
        try:
            lib.run_now(name, near=path)
        except BaseException as exc:  # a refusal (broken) or a store error: told to the waiting request
            failure.append(exc)
            if not isinstance(exc, NbopsError):
                log.exception("nbops: run now of schedule %s failed", name)
        finally:
            done.set()

    threading.Thread(target=fire, name=f"nbops-run-now-{name}", daemon=True).start()
    deadline = time.monotonic() + RUN_NOW_QUEUE_S
    while True:
        finished = done.is_set()  # read before the store: a firing made before it ended is seen below
        new = [f for f in await asyncio.to_thread(ss.firings, name, limit=RUN_NOW_LOOKBACK) if f["key"] not in before and f["key"].startswith("manual:")]
        if new:
            f = new[0]
            return {"name": name, "key": f["key"], "status": f["status"], "message": f"Queued a run of {name} ({f['key']})."}
        if failure:
            raise failure[0]
        if finished or time.monotonic() > deadline:
            raise StoreError(f"the run-now firing of {name} did not appear in the store", "refresh the schedule; see the server log")
        await asyncio.sleep(0.05)


def schedule_routes(base_url: str) -> list[tuple[str, type]]:
    base = url_path_join(base_url, "nbops", "schedules")
    part = r"([^/]+)"
    return [
        (base, SchedulesHandler),
        (url_path_join(base, part), ScheduleHandler),
        (url_path_join(base, part, "(pause|resume|run-now)"), ScheduleActionHandler),
    ]


def setup(server_app: Any) -> None:
    """Called by the server extension (``nbops.server.SERVER_PARTS``): add the routes."""
    web_app = server_app.web_app
    web_app.add_handlers(".*$", schedule_routes(web_app.settings["base_url"]))
