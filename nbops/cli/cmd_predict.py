"""``nbops predict MODEL@ALIAS INPUT -o OUTPUT``: batch prediction over a CSV or
Parquet file (local or an fsspec URL), streamed in chunks (``nbops.models.batch``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from nbops.cli.cmd_models import add_where, where
from nbops.cli.options import positive_int

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "predict",
        help="predict every row of a CSV or Parquet file with a registered model",
        description="Stream INPUT through the model in chunks and write its predictions (and class probabilities) to OUTPUT, "
        "with the model's name and version in the output's metadata (Parquet) or in OUTPUT.nbops.json (CSV).",
    )
    p.add_argument("ref", metavar="MODEL[@VERSION|@ALIAS]")
    p.add_argument("input", metavar="INPUT", help="a .csv or .parquet file, local or an fsspec URL (s3://...)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="where the predictions go (.csv or .parquet, local or a URL)")
    p.add_argument("--chunk-rows", type=positive_int, default=None, metavar="N", help="rows predicted at once (default 100000)")
    p.add_argument("--keep", action="append", default=[], metavar="COLUMN", help="copy this input column (an id) next to the predictions (repeatable)")
    p.add_argument("--format", choices=("csv", "parquet"), help="the output's format (default: from its extension)")
    p.add_argument("--input-format", choices=("csv", "parquet"), help="the input's format (default: from its extension)")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    add_where(p)
    p.add_argument("--json", action="store_true")
    return {"predict": _cmd_predict}


def _cmd_predict(a: argparse.Namespace) -> int:
    from nbops.cli import render
    from nbops.models import batch

    bar = _Bar() if a.progress or sys.stderr.isatty() else None
    kwargs = {"chunk_rows": a.chunk_rows} if a.chunk_rows else {}  # the library's default otherwise
    try:
        out = batch.predict_file(a.ref, a.input, a.output, keep=a.keep, input_format=a.input_format, output_format=a.format,
                                 progress=bar, **kwargs, **where(a))  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    if a.json:
        render.print_json(out)
    else:
        m = out["model"]
        rate = out["rows"] / out["seconds"] if out["seconds"] else 0
        render.console.print(
            render.escape(
                f"wrote {out['rows']:,} predictions of {m['name']} v{m['version']} to {out['output']} in {out['seconds']:.1f}s ({rate:,.0f} rows/s)"
            )  # fmt: skip
        )
        if out["metadata"]:
            render.console.print(render.escape(f"model metadata: {out['metadata']}"))
    return 0


class _Bar:
    """A tqdm bar on stderr in rows (rows/s), opened on the first chunk, when the total is known if it can be."""

    def __init__(self) -> None:
        self._bar = None

    def __call__(self, rows: int, total: int | None) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=" rows", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
        self._bar.update(rows - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
