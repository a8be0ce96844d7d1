"""Work that runs beside the request path of ``nbops serve``: the micro-batcher
(concurrent requests gathered into one model call on a worker thread) and the
sampled request log (written to the store by a thread of its own)."""

from __future__ import annotations

import asyncio
import queue
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nbops.models.serve_core import Loaded, Predictor, RequestError, frame_columns
from nbops.models.serve_metrics import ServeMetrics

__all__ = ["MicroBatcher", "RequestLog"]


@dataclass(eq=False)
class _Item:
    frame: Any
    loaded: Loaded
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Requests waiting for the model join the next model call: after the first
    arrives, others are gathered for up to ``max_wait`` seconds (or ``max_rows``
    rows), then one call on the model thread answers them all. While the model
    runs, the event loop keeps reading requests, so the busier the service, the
    larger its batches. Requests checked against different versions (a swap
    happened between them) never share a call."""

    def __init__(self, predictor: Predictor, metrics: ServeMetrics, *, max_rows: int = 1024, max_wait: float = 0.002):
        self.predictor = predictor
        self.metrics = metrics
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        # One model thread: the models are CPU-bound; more threads would only contend.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="nbops-serve-model")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="nbops-serve-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RequestError(503, "the service is shutting down", "retry against a running service"))
        self._executor.shutdown(wait=False)

    async def submit(self, frame: Any, loaded: Loaded) -> dict:
        """The response body for ``frame``, answered by ``loaded``; raises RequestError."""
        if self._queue is None:
            raise RequestError(503, "the service is not started", "retry in a moment")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(frame, loaded, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Item | None = None
        while True:
            first = carry or await self._queue.get()
            carry = None
            batch, rows = [first], len(first.frame)
            deadline = loop.time() + self.max_wait
            while rows < self.max_rows:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), left)
                    except TimeoutError:
                        break
                if item.loaded is not first.loaded:
                    carry = item  # another version: it starts the next call
                    break
                batch.append(item)
                rows += len(item.frame)
            await self._call(loop, batch, rows)

    async def _call(self, loop: asyncio.AbstractEventLoop, batch: list[_Item], rows: int) -> None:
        frames = [i.frame for i in batch]
        try:
            results = await loop.run_in_executor(self._executor, self.predictor.predict_frames, frames, batch[0].loaded)
        except Exception as exc:  # noqa: BLE001 - predict_frames catches model errors; this is a last resort
            results = [RequestError(500, f"the model call failed: {exc}")] * len(batch)
        self.metrics.batch(len(batch), rows)
        for item, result in zip(batch, results, strict=True):
            if item.future.done():  # the client went away
                continue
            if isinstance(result, Exception):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)


class RequestLog:
    """A sampled share (``rate``, 0..1) of requests' inputs, written to the store's
    ``serve_requests`` by a thread of its own: the request path only puts a frame
    on a bounded queue (full: the sample is dropped and counted), and a store
    error is counted in /metrics, never seen by a client."""

    def __init__(self, registry: Any, rate: float, metrics: ServeMetrics, *, capacity: int = 1000):
        self.registry = registry
        self.rate = float(rate)
        self.metrics = metrics
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None

    def offer(self, frame: Any, loaded: Loaded) -> None:
        if self.rate <= 0 or (self.rate < 1 and random.random() >= self.rate):
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="nbops-serve-request-log", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((frame, loaded.name, loaded.version))
        except queue.Full:
            self.metrics.count("log_dropped")

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to ``timeout`` seconds), then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _drain(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            frame, name, version = entry
            try:
                self.registry.log_requests(name, version, len(frame), {"columns": frame_columns(frame)})
                self.metrics.count("logged")
            except Exception:  # noqa: BLE001 - the store's trouble must never reach a request
                self.metrics.count("log_errors")
