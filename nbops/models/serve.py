"""``nbops serve MODEL@ALIAS``: a model version behind HTTP (Starlette on uvicorn).

Routes
    ``POST /predict``   JSON ``{"records": [{...}, ...]}`` or ``{"columns": {...}}``, or an
                        Arrow IPC stream (``Content-Type: application/vnd.apache.arrow.stream``)
                        → ``{"predictions": [...], "probabilities": [[...]], "classes": [...],
                        "model": {"name", "version"}}`` (probabilities and classes: classifiers).
    ``GET /health``     always open (no token): ``{"status": "ok", "model": {...}}``.
    ``GET /metadata``   name, version, flavor, signature, lineage (``registry.show``).
    ``GET /metrics``    Prometheus text: requests and errors by route and status, latency,
                        batch sizes, the version answering, swaps, request-log counts
                        (with ``--workers N`` each process counts its own: a scrape sees one).
    ``GET /features?table=T&id=1&id=2``  the online feature rows (with ``features=``).
Errors are JSON ``{"error", "message", "fix", "problems"?}``: 400 not JSON, 401 bad or
missing bearer token, 404 unknown route, 413 body over ``max_body``, 422 input not
matching the signature (``problems`` names each field), 500 the model itself failed.

How it works
    A ``Predictor`` (serve_core) holds the loaded version; a ``MicroBatcher``
    (serve_batch) gathers concurrent requests into one model call on a worker
    thread; a poll task re-resolves the reference every ``poll`` seconds and swaps
    to the version it now names (loaded off the event loop; requests already
    checked against the old version are answered by it, each response names
    its version); a ``RequestLog`` writes a sampled share of inputs to the store.

Shared with the Ray Serve deployment (``nbops.models.ray_serve``):
    ``build_app(ref, version=, rs=, token=)``  this whole service for one replica (pinned version)
From serve_core:
    ``parse_request(body, content_type, signature) -> DataFrame``  (raises RequestError)
    ``decode_request(body, content_type)`` / ``check_frame(frame, signature)``  its two halves
    ``Predictor(ref, store=, near=, rs=None, version=None)``: ``.current`` (a ``Loaded``: name,
    version, flavor, signature, model), ``predict_frame(df, loaded=None) -> dict`` (the response body),
    ``predict_frames(frames, loaded) -> [dict | RequestError]`` (one call, split back),
    ``refresh() -> Loaded | None`` (blocking: re-resolve, load, swap), ``swap(loaded)``,
    ``describe() -> dict`` (/metadata: the version and its lineage)
    ``RequestError``: ``http_status`` and ``to_json()``; ``dump_json(doc) -> bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import socket
import time
from typing import Any

from nbops.errors import MissingExtraError, NbopsError, UsageError
from nbops.models.serve_batch import MicroBatcher, RequestLog
from nbops.models.serve_core import Loaded, Predictor, RequestError, check_frame, decode_request, dump_json
from nbops.models.serve_metrics import ServeMetrics

__all__ = ["create_app", "build_app", "run_server", "app_from_env", "check_port", "MAX_BODY", "TOKEN_ENV"]

MAX_BODY = 10 * 1024 * 1024
TOKEN_ENV = "NBOPS_SERVE_TOKEN"
# How a worker process (``--workers N``) learns its options: uvicorn starts each
# worker from an import string, so the options travel in the environment.
CONFIG_ENV = "NBOPS_SERVE_CONFIG"
_ROUTES = ("/predict", "/health", "/metadata", "/metrics", "/features")


def create_app(
    ref: str,
    *,
    store=None,
    near=None,
    token: str | None = None,
    poll: float = 5.0,
    max_body: int = MAX_BODY,
    log_requests: float = 0.0,
    features: list[str] | tuple[str, ...] = (),
    max_batch_rows: int = 1024,
    max_wait: float = 0.002,
    rs=None,
    version: dict | None = None,
) -> Any:
    """The Starlette app serving ``ref`` (``MODEL@ALIAS``, ``MODEL@VERSION`` or ``MODEL``).

    The version is resolved and loaded here, so an unknown model or alias fails
    at once with the registry's error. ``token`` (default: $NBOPS_SERVE_TOKEN)
    guards every route but /health. ``poll``: seconds between checks of the
    alias (0: never). ``log_requests``: the share of requests whose inputs are
    written to the store. ``features``: feature tables whose online rows
    complete each record from its entity id. ``rs``/``version``: an open RunStore
    and an already-resolved version record (a Ray replica's; see build_app)."""
    try:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.routing import Route
    except ImportError:
        raise MissingExtraError("nbops serve", "serve", "starlette") from None
    if not 0 <= log_requests <= 1:
        raise UsageError(f"--log-requests takes a share between 0 and 1, not {log_requests}", "e.g. --log-requests 0.05 logs one request in 20")
    state = _Service(ref, store=store, near=near, token=token if token is not None else os.environ.get(TOKEN_ENV) or None,
                     poll=poll, max_body=max_body, log_rate=log_requests, features=features,
                     max_batch_rows=max_batch_rows, max_wait=max_wait, rs=rs, version=version)  # fmt: skip
    routes = [
        Route("/predict", state.predict, methods=["POST"]),
        Route("/health", state.health, methods=["GET"]),
        Route("/metadata", state.metadata, methods=["GET"]),
        Route("/metrics", state.metrics_text, methods=["GET"]),
        Route("/features", state.features_rows, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=state.lifespan,
        middleware=[Middleware(_Observed, metrics=state.metrics)],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.service = state
    return app


class _Service:
    """The routes' shared state: the predictor, batcher, request log, metrics and options."""

    def __init__(self, ref, *, store, near, token, poll, max_body, log_rate, features, max_batch_rows, max_wait, rs, version):
        self.ref, self.store, self.near = ref, store, near
        self.token = token
        self.poll = float(poll)
        self.max_body = int(max_body)
        self.predictor = Predictor(ref, store=store, near=near, rs=rs, version=version)
        self.metrics = ServeMetrics()
        self.metrics.model = self.predictor.current.label
        self.batcher = MicroBatcher(self.predictor, self.metrics, max_rows=max_batch_rows, max_wait=max_wait)
        self.log = RequestLog(self.predictor.registry, log_rate, self.metrics)
        self.features = None
        if features:
            from nbops.models.serve_features import FeatureJoin

            self.features = FeatureJoin(list(features), store=store, near=near)
        self._metadata: dict[int, dict] = {}

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.batcher.start()
        poller = asyncio.get_running_loop().create_task(self._poll()) if self.poll > 0 else None
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
            await self.batcher.stop()
            await asyncio.to_thread(self.log.close)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                loaded = await asyncio.to_thread(self.predictor.refresh)
            except Exception:  # noqa: BLE001 - the store down, a version that will not load: keep serving the current one
                self.metrics.poll_errors += 1
                continue
            if loaded is not None:
                self.metrics.swaps += 1
                self.metrics.model = loaded.label

    # -- routes -------------------------------------------------------------------------
    async def predict(self, request) -> Any:
        try:
            self._authorize(request)
            body = await _read_body(request, self.max_body)
            loaded: Loaded = self.predictor.current
            content_type = request.headers.get("content-type")
            if len(body) > _INLINE_BODY or self.features is not None:
                # A big body, or a feature lookup (store I/O): off the event loop, so small requests keep flowing.
                frame = await asyncio.to_thread(_checked, body, content_type, loaded.signature, self.features)
            else:
                frame = _checked(body, content_type, loaded.signature, None)
            self.log.offer(frame, loaded)
            return _json(200, await self.batcher.submit(frame, loaded))
        except NbopsError as exc:
            return _error(exc)

    async def health(self, request) -> Any:
        return _json(200, {"status": "ok", "model": self.predictor.current.label})

    async def metadata(self, request) -> Any:
        try:
            self._authorize(request)
            loaded = self.predictor.current
            if loaded.version not in self._metadata:
                self._metadata[loaded.version] = await asyncio.to_thread(self._show, loaded)
            return _json(200, self._metadata[loaded.version])
        except NbopsError as exc:
            return _error(exc)

    def _show(self, loaded: Loaded) -> dict:
        return self.predictor.describe(loaded) | {"features": self.features.tables if self.features else []}

    async def metrics_text(self, request) -> Any:
        from starlette.responses import Response

        try:
            self._authorize(request)
        except NbopsError as exc:
            return _error(exc)
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def features_rows(self, request) -> Any:
        try:
            self._authorize(request)
            if self.features is None:
                raise RequestError(404, "this service serves no feature tables", "start it with --features TABLE")
            table = request.query_params.get("table")
            ids = request.query_params.getlist("id")
            return _json(200, await asyncio.to_thread(self.features.rows, table, ids))
        except NbopsError as exc:
            return _error(exc)

    def _authorize(self, request) -> None:
        if not self.token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise RequestError(401, "missing or wrong bearer token", "send the header 'Authorization: Bearer TOKEN' (the token the service was started with)")


# Bodies up to this size are decoded on the event loop (a few hundred microseconds);
# larger ones in a thread.
_INLINE_BODY = 64 * 1024


def _checked(body: bytes, content_type: str | None, signature: dict, features) -> Any:
    frame = decode_request(body, content_type)
    if features is not None:
        frame = features.enrich(frame, signature)
    return check_frame(frame, signature)


async def _read_body(request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to pass ``limit`` (from
    Content-Length, or while streaming): an oversized body is never held whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"bad Content-Length {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, f"the body is {int(declared):,} bytes, over the limit of {limit:,}", _TOO_LARGE_FIX)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over the limit of {limit:,} bytes", _TOO_LARGE_FIX)
        chunks.append(chunk)
    return b"".join(chunks)


_TOO_LARGE_FIX = "send fewer rows per request, or start the service with a larger --max-body"


def _json(status: int, doc: Any, headers: dict | None = None) -> Any:
    from starlette.responses import Response

    return Response(dump_json(doc), status_code=status, media_type="application/json", headers=headers)


def _error(exc: NbopsError) -> Any:
    status = getattr(exc, "http_status", 500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Connection": "close"} if status == 413 else None
    return _json(status, exc.to_json(), headers)


async def _not_found(request, exc) -> Any:
    return _error(RequestError(404, f"no route {request.url.path}", f"routes: {', '.join(_ROUTES)}"))


async def _not_allowed(request, exc) -> Any:
    return _error(RequestError(405, f"{request.method} is not allowed on {request.url.path}", "POST /predict; GET /health, /metadata, /metrics, /features"))


class _Observed:
    """Outermost ASGI layer: times every HTTP request, counts it by route and
    status, and turns anything that escaped the routes into a JSON 500 (the
    service never dies of a request). Plain ASGI: no per-request task or copy."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]
        started = [False]

        async def observed_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                started[0] = True
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception as exc:  # noqa: BLE001 - the last net under every route
            if not started[0]:
                response = _error(RequestError(500, f"internal error: {type(exc).__name__}: {exc}", "see the service's log"))
                await response(scope, receive, send)
        finally:
            path = scope.get("path", "")
            self.metrics.request(path if path in _ROUTES else "other", status[0], time.perf_counter() - start)


# -- running it ---------------------------------------------------------------------
def check_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (as uvicorn binds it), or UsageError naming the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            f"stop what holds port {port} (see: lsof -i :{port}), or pick another with --port",
        ) from None
    return sock


def run_server(ref: str, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1, **options: Any) -> None:
    """Serve ``ref`` until interrupted (blocking). ``options`` are create_app's."""
    try:
        import uvicorn
    except ImportError:
        raise MissingExtraError("nbops serve", "serve", "uvicorn") from None
    sock = check_port(host, port)
    common = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 5}
    if workers > 1:
        sock.close()  # each worker binds it again (SO_REUSEADDR), through uvicorn's own supervisor
        os.environ[CONFIG_ENV] = json.dumps({"ref": ref, **{k: (str(v) if k in ("store", "near") and v is not None else v) for k, v in options.items()}})
        uvicorn.run("nbops.models.serve:app_from_env", factory=True, host=host, port=port, workers=workers, **common)
        return
    app = create_app(ref, **options)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="on", **common))
    server.run(sockets=[sock])
    if not server.started:
        raise UsageError(f"the service for {ref} did not start", "see the messages above")


def build_app(ref: str, *, version: dict, rs, token: str | None = None, poll: float = 0, **options: Any) -> Any:
    """The service for one Ray Serve replica: ``version`` (resolved by the driver) from
    the open store ``rs``; no polling by default (the deployment pins one version)."""
    return create_app(ref, rs=rs, version=version, token=token, poll=poll, **options)


def app_from_env() -> Any:
    """The app of one worker process of ``nbops serve --workers N`` (uvicorn's factory)."""
    options = json.loads(os.environ[CONFIG_ENV])
    return create_app(options.pop("ref"), **options)
