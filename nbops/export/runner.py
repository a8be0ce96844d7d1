"""Runs one stage notebook inside a container (a KFP component, an Airflow
KubernetesPodOperator pod). The export embeds this file's text in the container's
command, so it imports only the standard library; the image needs python3,
papermill and nbops (the stage notebook's inputs cell imports its runtime).

    python3 -c RUNNER SPEC_JSON [--param NAME VALUE]... [--params-json JSON]
        [--input PRODUCER PATH]... [--output PATH] [--artifacts DIR]

SPEC_JSON: {"stage", "notebook" (the stage notebook, zlib + base64), "types"
(parameter -> int|float|bool|str|list|dict|none), "timeout" (seconds or null),
"cwd" (working directory, or null for the image's)}.

Artifacts: with ``--artifacts DIR`` (a volume every stage mounts) the stage reads
and writes ``DIR/<stage>/`` directly. Without it (KFP), each ``--input`` folder is
linked into a scratch artifact folder under its producer's name, and the stage's
own folder is copied to ``--output`` at the end, where KFP picks it up as the
stage's output artifact. The executed notebook goes into the stage's folder as
``executed.ipynb``.
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib


def typed(kind, text):
    # KFP renders parameters as text: int 5 -> "5", bool -> "true", list/dict -> JSON.
    if kind == "int":
        return int(float(text)) if isinstance(text, str) else int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text if isinstance(text, bool) else str(text).strip().lower() in ("true", "1", "yes", "on")
    if kind == "str":
        return text
    return json.loads(text) if isinstance(text, str) else text  # list, dict, none: JSON


def main(argv):
    p = argparse.ArgumentParser(prog="nbops-stage")
    p.add_argument("spec")
    p.add_argument("--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    p.add_argument("--params-json", default=None)
    p.add_argument("--input", nargs=2, action="append", default=[], metavar=("PRODUCER", "PATH"))
    p.add_argument("--output", default=None)
    p.add_argument("--artifacts", default=None)
    a = p.parse_args(argv)
    spec = json.loads(a.spec)
    stage, types = spec["stage"], spec.get("types", {})
    params = {}
    if a.params_json:
        given = json.loads(a.params_json)
        params.update({k: v for k, v in given.items() if k in types})
    for name, value in a.param:
        params[name] = typed(types.get(name, "str"), value)

    work = tempfile.mkdtemp(prefix=f"nbops-{stage}-")
    artifacts = a.artifacts or os.path.join(work, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    for producer, path in a.input:
        link = os.path.join(artifacts, producer)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(path), link)
    notebook = os.path.join(work, f"{stage}.ipynb")
    with open(notebook, "wb") as f:
        f.write(zlib.decompress(base64.b64decode(spec["notebook"])))
    stage_dir = os.path.join(artifacts, stage)
    os.makedirs(stage_dir, exist_ok=True)
    executed = os.path.join(stage_dir, "executed.ipynb")
    cmd = [sys.executable, "-m", "papermill", notebook, executed, "-y", json.dumps(params), "-p", "nbops_artifact_dir", artifacts]
    cmd += ["--cwd", spec.get("cwd") or os.getcwd()]
    print("nbops: running stage", stage, "with", json.dumps(params, sort_keys=True), flush=True)
    try:
        rc = subprocess.run(cmd, timeout=spec.get("timeout")).returncode
    except subprocess.TimeoutExpired:
        print(f"nbops: stage {stage} ran past its timeout of {spec['timeout']} s", file=sys.stderr)
        rc = 124
    if a.output:
        os.makedirs(a.output, exist_ok=True)
        shutil.copytree(stage_dir, a.output, dirs_exist_ok=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
