"""``nbops serve MODEL@ALIAS --ray``: the same service as a Ray Serve deployment.

The driver (the process calling :func:`deploy`) resolves the reference, so an
unknown model, version or alias fails here before anything reaches the cluster.
It then works out what each replica asks Ray for (``num_gpus`` from the stage
that trained the version: ``%%stage train --gpus 1`` or a ``gpus:1`` tag,
unless given), joins the cluster (``--address``, ``$RAY_ADDRESS``, the cluster
``ray start`` recorded here: ``nbops.execute.ray_cluster``) and runs one Serve
application per model, named ``nbops-MODEL``.

Each replica opens the store itself (the settings resolved here: a PostgreSQL
URL with S3 or shared-folder objects, or an embedded store's folder when the
cluster shares this machine's disk), loads the version and serves the same
ASGI app as ``nbops serve`` (``nbops.models.serve``: routes, validation,
bearer token, metrics). Credentials reach a replica as they reach a Ray stage:
from the node's own environment; nothing else is forwarded.

Serve's HTTP proxy is cluster-wide: one host and port for every application
(the first deployment sets them). It runs on the head node only, so the URL
returned is the head's and two nodes sharing one address never compete for
the port.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nbops.errors import MissingExtraError, NbopsError, UsageError
from nbops.execute.ray_cluster import connect, probe, resolve_address
from nbops.models.registry import parse_ref, resolve
from nbops.store.config import StoreSettings, is_database_url
from nbops.store.location import store_settings

__all__ = ["APP_PREFIX", "app_name", "deploy", "shutdown", "describe", "replica_resources"]

APP_PREFIX = "nbops-"
# How long a deployment may take to become healthy (replicas import the model's
# libraries and load it; a busy node, or one that must fetch the nbops package, is slow).
DEFAULT_TIMEOUT_S = float(os.environ.get("NBOPS_SERVE_RAY_TIMEOUT", "300"))


def app_name(ref: str) -> str:
    """The Serve application of a model: ``nbops-churn`` for ``churn@production``."""
    return APP_PREFIX + parse_ref(ref).name


def replica_resources(version: dict, num_gpus: float | None = None, num_cpus: float | None = None) -> dict[str, float]:
    """What each replica asks Ray for: ``num_gpus`` from the training stage unless given."""
    if num_gpus is None:
        num_gpus = float(((version.get("extra") or {}).get("resources") or {}).get("gpus") or 0)
    if num_gpus < 0 or (num_cpus is not None and num_cpus < 0):
        raise UsageError(f"a replica cannot ask for negative resources (num_gpus={num_gpus}, num_cpus={num_cpus})", "pass 0 or more")
    out = {"num_gpus": float(num_gpus)}
    if num_cpus is not None:
        out["num_cpus"] = float(num_cpus)
    return out


def _import_serve() -> Any:
    try:
        import ray
        from ray import serve
    except ImportError:
        raise MissingExtraError("nbops serve --ray", "ray[serve]", "ray") from None
    return ray, serve


def _join(address: str | None, ship_nbops: bool = False) -> Any:
    """Connect this process to the cluster (once). ``ship_nbops``: upload this nbops
    package with the job, so replicas run the same code as the driver."""
    ray, _ = _import_serve()
    if not ray.is_initialized():
        where = resolve_address(address)
        if where == "local":
            raise UsageError(
                "nbops serve --ray needs a running cluster, not a throwaway one", "start one: ray start --head, then pass --address or RAY_ADDRESS"
            )
        probe(where)
        env: dict[str, Any] = {}
        if ship_nbops:
            import nbops

            env["py_modules"] = [str(Path(nbops.__file__).parent)]
        connect(ray, where, env, os.getcwd())
    return ray


def _shipped_env(ray: Any) -> dict[str, Any] | None:
    """The job's uploaded packages as URIs (Serve takes no local paths), for the replicas' runtime_env."""
    uploaded = [m for m in (ray.get_runtime_context().runtime_env or {}).get("py_modules") or [] if "://" in str(m)]
    return {"py_modules": uploaded} if uploaded else None


def _replica_settings(store, near) -> dict[str, Any]:
    """The store as a replica opens it, credentials included (they travel in the
    deployment's arguments, as the driver resolved them)."""
    s = store_settings(store, near)
    if not is_database_url(s.store) and not Path(s.store).is_absolute():
        s = StoreSettings(str(Path(s.store).resolve()), s.objects, s.workspace, s.source)
    return {"store": s.store, "objects": s.objects, "database": is_database_url(s.store), "workspace": str(Path(s.workspace).resolve())}


def _open_replica_store(settings: dict[str, Any]):
    """A replica's RunStore: a database store gets a workspace of its own on the node
    (its model cache), since the driver's folder may not exist there."""
    from nbops.store import RunStore

    if settings["database"]:
        key = hashlib.sha256(settings["store"].encode()).hexdigest()[:16]  # one cache per store, the same in every process
        workspace = Path(tempfile.gettempdir()) / "nbops-serve" / key
        return RunStore(settings["store"], create=False, objects=settings["objects"], workspace=workspace)
    return RunStore(settings["store"], create=False, objects=settings["objects"])


class NbopsReplica:
    """One replica: the store opened on its node, the version loaded, the ASGI app built.

    Defined at module level (not inside ``deploy``) so Ray pickles it by reference:
    a replica imports it from ``nbops`` there, the package the deployment ships."""

    def __init__(self, ref: str, version_number: int, settings: dict[str, Any], token: str | None, options: dict[str, Any]) -> None:
        from nbops.models.registry import ModelRef
        from nbops.store.registry import Registry

        rs = _open_replica_store(settings)
        # The version the driver resolved, not the alias again: every replica serves the same one.
        version = resolve(ModelRef(parse_ref(ref).name, version=version_number), registry=Registry(rs))
        # Prefixed: Serve's ASGI wrapper, mixed into this class, has an ``app`` of its own.
        self._nbops_version = version
        self._nbops_app = _build_app(ref, version, rs, token, options)

    def __serve_build_asgi_app__(self) -> Any:
        return self._nbops_app

    def placement(self) -> dict[str, Any]:
        """Where this replica runs and what Ray gave it (tests and ``describe``)."""
        import ray
        from ray import serve

        ctx = ray.get_runtime_context()
        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "pid": os.getpid(),
            "node_id": ctx.get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "resources": ctx.get_assigned_resources(),
            "model": {"name": self._nbops_version["name"], "version": self._nbops_version["version"]},
        }


def _build_app(ref: str, version: dict, rs, token: str | None, options: dict[str, Any]) -> Any:
    from nbops.models import serve as service

    return service.build_app(ref, version=version, rs=rs, token=token, **options)


def deploy(
    ref: str,
    *,
    store=None,
    near=None,
    address: str | None = None,
    replicas: int = 1,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    route_prefix: str = "/",
    max_body: int | None = None,
    blocking: bool = True,
    ship_nbops: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> str:
    """Serve ``ref`` on the Ray cluster; returns the service's URL.

    ``blocking=False`` returns once every replica is healthy; ``blocking=True``
    (``nbops serve --ray``) then stays until interrupted and deletes the
    application on the way out, as stopping ``nbops serve`` stops the service.

    ``route_prefix``: where the routes hang (``/predict``, ``/health``, ...); one
    proxy serves every application of the cluster, so a second model served at
    the same time needs a prefix of its own (e.g. ``/churn``)."""
    if not isinstance(replicas, int) or replicas < 1:
        raise UsageError(f"replicas must be a whole number >= 1, not {replicas!r}", "e.g. --replicas 2")
    if not route_prefix.startswith("/") or (route_prefix != "/" and route_prefix.endswith("/")):
        raise UsageError(f"invalid route prefix {route_prefix!r}", "start it with '/' and end it without one, e.g. /churn")
    version = resolve(ref, store=store, near=near)
    resources = replica_resources(version, num_gpus, num_cpus)
    settings = _replica_settings(store, near)
    ray = _join(address, ship_nbops)
    _, serve = _import_serve()
    _start_proxy(serve, host, port)
    options: dict[str, Any] = dict(resources)
    shipped = _shipped_env(ray) if ship_nbops else None
    if shipped:
        options["runtime_env"] = shipped
    name = app_name(ref)
    deployment = serve.deployment(
        serve.ingress()(NbopsReplica), name="model", num_replicas=replicas, ray_actor_options=options, health_check_period_s=2, health_check_timeout_s=30
    )
    service_options = {"max_body": max_body} if max_body is not None else {}
    app = deployment.bind(ref, int(version["version"]), settings, token, service_options)
    started = time.time()
    try:
        _run_within(serve, app, name, route_prefix, timeout)
    except NbopsError:
        _delete_quietly(serve, name)  # a failed application would hold its route and retry forever
        raise
    except Exception as exc:  # Serve's own errors: a replica that failed to start, a taken route
        _delete_quietly(serve, name)
        raise UsageError(f"Ray Serve could not deploy {ref} as {name}: {_first_line(exc)}", _deploy_fix(exc, resources, replicas)) from None
    url = _url(serve, host, port) + route_prefix.rstrip("/")
    if not blocking:
        return url
    print(
        f"serving {version['name']} v{version['version']} on {url} ({replicas} replica(s), {time.time() - started:.1f} s to start); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        _delete_quietly(serve, name)
    return url


def _start_proxy(serve: Any, host: str, port: int) -> None:
    """Serve's proxy on the head node; a proxy already running elsewhere is an error, not a silent other port."""
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": int(port)})
    have = _http_config(serve)
    if have is not None and (have.host, int(have.port)) != (host, int(port)):
        raise UsageError(
            f"Ray Serve already listens on {have.host}:{have.port} in this cluster, not {host}:{port} (one proxy serves every application)",
            f"pass --host {have.host} --port {have.port}, or stop Serve first: nbops serve MODEL --ray --stop",
        )


def _http_config(serve: Any) -> Any:
    try:
        from ray.serve.context import _get_global_client

        return _get_global_client().http_config
    except Exception:  # noqa: BLE001 - a Ray without this private accessor: trust what was asked
        return None


def _url(serve: Any, host: str, port: int) -> str:
    have = _http_config(serve)
    host, port = (have.host, have.port) if have is not None else (host, port)
    if host in ("0.0.0.0", "::"):  # listening everywhere: name this machine
        host = socket.gethostname()
    return f"http://{host}:{port}"


def _run_within(serve: Any, app: Any, name: str, route_prefix: str, timeout: float) -> None:
    """``serve.run`` without blocking, then wait (bounded) for the application to be RUNNING."""
    # serve.run would wait without a bound (forever, when no node has the resources asked for).
    serve.run_many([serve.RunTarget(app, name=name, route_prefix=route_prefix)], wait_for_applications_running=False)
    deadline = time.time() + timeout
    while True:
        status = serve.status().applications.get(name)
        state = str(getattr(status, "status", "")).rsplit(".", 1)[-1]
        if state == "RUNNING":
            return
        if state == "DEPLOY_FAILED":
            # The application says "failed to update"; its deployment says why (the replica's traceback).
            why = " ".join(str(d.message) for d in status.deployments.values() if d.message) or status.message
            raise UsageError(f"Ray Serve could not start {name}: {_first_line(why)}", _replica_fix(why))
        if time.time() > deadline:
            message = getattr(status, "message", "") or "its replicas are not healthy yet"
            _delete_quietly(serve, name)
            raise UsageError(
                f"{name} was not healthy within {timeout:g} s: {_first_line(message)}",
                "check that some node has the resources each replica asks for (ray status), or raise NBOPS_SERVE_RAY_TIMEOUT on a slow cluster",
            )
        time.sleep(0.25)


def _replica_fix(text: str) -> str:
    if "NotFoundError" in text or "no run store" in text or "no runs yet" in text:
        return "the replicas must reach the store: a PostgreSQL store with S3 or shared objects, or a folder every node mounts at the same path"
    return "see the replica's error above; 'ray logs' on the node has the rest"


def _deploy_fix(exc: Exception, resources: dict, replicas: int) -> str:
    text = str(exc)
    if "route" in text.lower() and "prefix" in text.lower():
        return "another application already serves '/': stop it first (nbops serve MODEL --ray --stop)"
    return f"each of the {replicas} replica(s) asks for {resources}: check 'ray status' for a node that has it"


def _first_line(text: Any) -> str:
    """The line of a long Ray error that says what went wrong (and the one after it: pydantic's detail)."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    at = max((i for i, ln in enumerate(lines) if "Error" in ln), default=len(lines) - 1)
    return " ".join(lines[at : at + 3])[:800] if lines else ""


def _delete_quietly(serve: Any, name: str) -> None:
    try:
        serve.delete(name)
    except Exception:  # noqa: BLE001 - nothing to delete, or the cluster is gone: nothing to undo
        pass


def shutdown(ref: str | None = None, *, address: str | None = None) -> list[str]:
    """Delete ``ref``'s application (``nbops-MODEL``), or every nbops application
    and Serve itself when ``ref`` is None; returns the applications removed."""
    _join(address)
    _, serve = _import_serve()
    running = list(serve.status().applications)
    if ref is not None:
        name = app_name(ref)
        if name not in running:
            from nbops.errors import NotFoundError

            raise NotFoundError(f"{parse_ref(ref).name} is not served on this Ray cluster", f"served: {', '.join(running) or 'nothing'}")
        serve.delete(name)
        return [name]
    ours = [n for n in running if n.startswith(APP_PREFIX)]
    for name in ours:
        serve.delete(name)
    if len(ours) == len(running):  # nothing else uses Serve: stop the controller and proxy too
        serve.shutdown()
    return ours


def describe(ref: str, *, address: str | None = None, samples: int = 0) -> dict[str, Any]:
    """The application's state, and (``samples`` > 0) the replicas that answered that many placement calls."""
    _join(address)
    _, serve = _import_serve()
    name = app_name(ref)
    status = serve.status().applications.get(name)
    if status is None:
        from nbops.errors import NotFoundError

        raise NotFoundError(f"{parse_ref(ref).name} is not served on this Ray cluster", f"deploy it: nbops serve {ref} --ray")
    out: dict[str, Any] = {"app": name, "status": str(status.status).rsplit(".", 1)[-1], "deployments": {}}
    for dep, ds in status.deployments.items():
        out["deployments"][dep] = {
            "status": str(ds.status).rsplit(".", 1)[-1],
            "replicas": {str(k).rsplit(".", 1)[-1]: v for k, v in ds.replica_states.items()},
        }
    if samples:
        handle = serve.get_deployment_handle("model", app_name=name)
        seen = {}
        for _ in range(samples):
            p = handle.placement.remote().result(timeout_s=60)
            seen[p["replica"]] = p
        out["placements"] = list(seen.values())
    return out
