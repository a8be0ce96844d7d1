"""``nbops models export MODEL@ALIAS --format onnx|torchscript -o PATH``: an edge export,
written only after it matched the original on a sample."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["register_action"]


def register_action(actions: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    from nbops.cli.cmd_models import add_where

    p = actions.add_parser(
        "export",
        help="export a version as ONNX (scikit-learn, torch) or TorchScript (torch), checked against the original",
        description="Convert the model, run the export and the original on sample rows (its training data, or rows generated "
        "from its signature) and write PATH only when the largest difference is within the tolerance.",
    )
    p.add_argument("ref", metavar="MODEL[@VERSION|@ALIAS]")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"), dest="export_format")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the file to write (atomically; untouched when the export is refused)")
    p.add_argument("--tolerance", type=float, metavar="T", help="largest absolute difference accepted (default: 1e-5 × max(1, largest |output|))")
    p.add_argument("--sample", type=int, default=200, metavar="N", help="rows to compare on (default: 200)")
    add_where(p)
    p.add_argument("--json", action="store_true")
    return {"export": _cmd_export}


def _cmd_export(a: argparse.Namespace) -> int:
    from nbops.cli import render
    from nbops.cli.cmd_models import where
    from nbops.models.export import export_model

    out = export_model(a.ref, a.export_format, a.output, tolerance=a.tolerance, sample_rows=a.sample, **where(a))
    if a.json:
        render.print_json(out)
        return 0
    opset = ", ".join(f"{d} {v}" for d, v in out["opset"].items()) if out.get("opset") else "n/a"
    labels = f", {out['tied_labels']} tied label(s) broke the other way" if out.get("tied_labels") else ""
    render.console.print(
        f"exported {out['name']} v{out['version']} ({out['flavor']}) to {out['format']}: {out['output']} ({out['bytes']:,} bytes)\n"
        f"  max difference {out['max_diff']:.3g} (tolerance {out['tolerance']:.3g}) on {out['sample_rows']} rows from {out['sample_source']}{labels}\n"
        f"  exporter {out['exporter']}; opset {opset}; inputs {', '.join(out['inputs'])}",
        markup=False,
    )
    return 0
