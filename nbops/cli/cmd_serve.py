"""``nbops serve MODEL@ALIAS``: a registered model behind HTTP (uvicorn), or on a
Ray cluster with ``--ray`` (Ray Serve)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from nbops.cli.options import positive_int

__all__ = ["register"]


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    from nbops.cli.cmd_models import add_where

    p = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP: POST /predict, GET /health, /metadata, /metrics",
        description="Serve MODEL@ALIAS (or MODEL@VERSION) over HTTP. The service follows the alias: when it moves,\n"
        "the new version is loaded and swapped in without dropping a request.\n\n"
        "  curl -s localhost:8080/predict -H 'Content-Type: application/json' \\\n"
        '       -d \'{"records": [{"tenure_months": 3, ...}]}\'',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ref", metavar="MODEL@ALIAS")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080, help="default 8080")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (each loads the model; default 1)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every route but /health (default: $NBOPS_SERVE_TOKEN)")
    p.add_argument("--poll", type=_seconds, default=5.0, metavar="SECONDS", help="how often to check whether the alias moved (default 5; 0: never)")
    p.add_argument("--max-body", type=positive_int, default=10 * 1024 * 1024, metavar="BYTES", help="larger request bodies get 413 (default 10 MB)")
    p.add_argument("--log-requests", type=_share, default=0.0, metavar="RATE", help="share of requests whose inputs are logged to the store (0..1)")
    p.add_argument("--features", nargs="+", default=[], metavar="TABLE", help="feature tables whose online values complete each record from its entity id")
    p.add_argument("--ray", action="store_true", help="deploy on a Ray cluster with Ray Serve instead")
    p.add_argument("--replicas", type=positive_int, default=1, help="with --ray: replicas (default 1)")
    p.add_argument("--num-gpus", type=float, help="with --ray: GPUs per replica (default: the training stage's)")
    p.add_argument("--address", help="with --ray: the cluster (default: RAY_ADDRESS, or the cluster `ray start` recorded here)")
    p.add_argument("--route-prefix", default="/", metavar="PATH", help="with --ray: where the routes hang (one proxy serves every model; e.g. /churn)")
    p.add_argument("--stop", action="store_true", help="with --ray: remove MODEL's deployment from the cluster")
    add_where(p)
    return {"serve": _cmd_serve}


def _cmd_serve(a: argparse.Namespace) -> int:
    import os

    from nbops.errors import UsageError
    from nbops.models.registry import resolve

    if not a.ray and (a.replicas != 1 or a.num_gpus is not None or a.address or a.stop or a.route_prefix != "/"):
        raise UsageError(
            "--replicas, --num-gpus, --address, --route-prefix and --stop go with --ray",
            f"add --ray (e.g. nbops serve {a.ref} --ray --replicas 2), or drop them",
        )
    if a.ray and (a.workers != 1 or a.features or a.log_requests):
        raise UsageError("--workers, --features and --log-requests are for the uvicorn service, not --ray", "drop them, or drop --ray")
    token = a.token or os.environ.get("NBOPS_SERVE_TOKEN") or None
    if a.ray and a.stop:
        from nbops.models import ray_serve

        removed = ray_serve.shutdown(a.ref, address=a.address)
        print(f"removed {', '.join(removed)} from Ray Serve" if removed else f"nothing of {a.ref} was deployed on Ray Serve", file=sys.stderr)
        return 0
    version = resolve(a.ref, store=a.store, near=a.notebook)  # unknown model or alias: the registry's error, before any port is taken
    if a.ray:
        from nbops.models import ray_serve

        # deploy() prints where it serves and blocks until Ctrl-C, then removes the deployment.
        ray_serve.deploy(a.ref, store=a.store, near=a.notebook, address=a.address, replicas=a.replicas, num_gpus=a.num_gpus,
                         host=a.host, port=a.port, token=token, route_prefix=a.route_prefix, max_body=a.max_body)  # fmt: skip
        print(f"stopped {version['name']} v{version['version']} on Ray Serve", file=sys.stderr)
        return 0
    from nbops.models.serve import check_port, run_server

    check_port(a.host, a.port).close()  # a port in use fails before the model is loaded
    url = f"http://{a.host}:{a.port}"
    print(f"serving {version['name']} v{version['version']} ({a.ref}) at {url}  (POST /predict; Ctrl-C stops)", file=sys.stderr, flush=True)
    run_server(a.ref, host=a.host, port=a.port, workers=a.workers, store=a.store, near=a.notebook, token=token, poll=a.poll,
               max_body=a.max_body, log_requests=a.log_requests, features=a.features)  # fmt: skip
    return 0
