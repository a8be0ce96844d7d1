"""What ``GET /metrics`` says, in Prometheus' text exposition format (written
by hand: counters, gauges and histograms are a few lines each, and the service
needs no client library for them)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

__all__ = ["ServeMetrics", "Histogram"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    def __init__(self, buckets: tuple):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last: above every bucket (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            running += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{_num(bound)}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        braces = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{braces} {_num(self.sum)}", f"{name}_count{braces} {self.count}"]
        return out


def _num(x: float) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


def _esc(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ServeMetrics:
    """Counts kept by one service process. Updated on the event loop, except the
    request log's counts (its own thread): those take the lock."""

    def __init__(self):
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_rows = Histogram(SIZE_BUCKETS)
        self.batch_requests = Histogram(SIZE_BUCKETS)
        self.model_calls = 0
        self.swaps = 0
        self.poll_errors = 0
        self.logged = 0
        self.log_errors = 0
        self.log_dropped = 0
        self.model = {"name": "", "version": 0}
        self._lock = threading.Lock()

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def batch(self, requests: int, rows: int) -> None:
        self.model_calls += 1
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def count(self, what: str, n: int = 1) -> None:
        """A count bumped from another thread (request log, poller)."""
        with self._lock:
            setattr(self, what, getattr(self, what) + n)

    def render(self) -> str:
        m = [
            "# HELP nbops_serve_requests_total HTTP requests answered, by route and status.",
            "# TYPE nbops_serve_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            m.append(f'nbops_serve_requests_total{{route="{_esc(route)}",status="{status}"}} {n}')
        m += ["# HELP nbops_serve_errors_total Requests answered with a 4xx or 5xx status.", "# TYPE nbops_serve_errors_total counter"]
        for (route, status), n in sorted(self.requests.items()):
            if status >= 400:
                m.append(f'nbops_serve_errors_total{{route="{_esc(route)}",status="{status}"}} {n}')
        m += ["# HELP nbops_serve_request_duration_seconds Time from request to response.", "# TYPE nbops_serve_request_duration_seconds histogram"]
        for route, hist in sorted(self.latency.items()):
            m += hist.lines("nbops_serve_request_duration_seconds", f'route="{_esc(route)}"')
        m += ["# HELP nbops_serve_batch_rows Rows per model call (micro-batches).", "# TYPE nbops_serve_batch_rows histogram"]
        m += self.batch_rows.lines("nbops_serve_batch_rows")
        m += ["# HELP nbops_serve_batch_requests Requests served per model call.", "# TYPE nbops_serve_batch_requests histogram"]
        m += self.batch_requests.lines("nbops_serve_batch_requests")
        name = _esc(self.model["name"])
        for metric, kind, help_, value in (
            ("model_calls_total", "counter", "Model calls (one per micro-batch).", self.model_calls),
            ("model_version", "gauge", "The version answering new requests.", self.model["version"]),
            ("swaps_total", "counter", "Times the alias moved and the service swapped versions.", self.swaps),
            ("poll_errors_total", "counter", "Failed checks of the alias (the store unreachable...): the service kept its version.", self.poll_errors),
            ("logged_requests_total", "counter", "Sampled requests written to the store.", self.logged),
            ("log_errors_total", "counter", "Sampled requests the store refused (the requests themselves were answered).", self.log_errors),
            ("log_dropped_total", "counter", "Sampled requests dropped because the log queue was full.", self.log_dropped),
        ):
            m += [f"# HELP nbops_serve_{metric} {help_}", f"# TYPE nbops_serve_{metric} {kind}", f'nbops_serve_{metric}{{model="{name}"}} {value}']
        return "\n".join(m) + "\n"
