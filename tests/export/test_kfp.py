"""nbops export --to kfp: a KFP v2 spec compiled by kfp's own Compiler, loadable
by kfp again, naming each stage's resources; its container commands run the
churn example end to end when executed as KFP would (placeholders filled in)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, run_cli
from tests.export.notebooks import resources_notebook


def export(nb: Path, out: Path, kfp_python: Path, *args: str):
    return run_cli("export", str(nb), "--to", "kfp", "-o", str(out), "--kfp-python", str(kfp_python), *args)


def test_kfp_spec_compiles_with_each_stages_resources(kfp_python, tmp_path):
    nb = resources_notebook(tmp_path / "src")
    out = tmp_path / "pipeline.yaml"
    proc = export(nb, out, kfp_python, "--image", "registry.example/team/nbops:1", "-p", "rows=20")
    assert proc.returncode == 0, proc.stderr
    assert "prep" in proc.stdout and "gpus=1" in proc.stdout  # the summary names the resources too
    spec = yaml.safe_load(out.read_text())

    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-prep", "exec-train", "exec-report"}
    prep = executors["exec-prep"]["container"]
    assert prep["image"] == "registry.example/team/nbops:1"
    assert prep["resources"]["resourceCpuLimit"] == "2" and prep["resources"]["resourceMemoryLimit"] == "2Gi"
    assert prep["resources"]["resourceCpuRequest"] == "2" and prep["resources"]["resourceMemoryRequest"] == "2Gi"
    train = executors["exec-train"]["container"]["resources"]
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu" and train["accelerator"]["resourceCount"] == "1"
    assert train["resourceMemoryLimit"] == "512Mi"
    assert "resources" not in executors["exec-report"]["container"]

    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["prep"]["retryPolicy"]["maxRetryCount"] == 2
    assert tasks["train"]["dependentTasks"] == ["prep"]
    assert tasks["train"]["inputs"]["artifacts"]["from_prep"]["taskOutputArtifact"]["producerTask"] == "prep"
    assert tasks["report"]["dependentTasks"] == ["train"]  # after:train, no data
    assert tasks["report"]["cachingOptions"].get("enableCache") in (None, False)  # cache:off
    assert tasks["prep"]["cachingOptions"]["enableCache"] is True
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["rows"]["defaultValue"] == 20 and inputs["label"]["defaultValue"] == "x"

    # kfp reads its own output back as a component
    check = subprocess.run(
        [str(kfp_python), "-c", "import sys; from kfp import components; c = components.load_component_from_file(sys.argv[1]); print(c.name)", str(out)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert check.returncode == 0 and check.stdout.strip() == "res", check.stderr


PLACEHOLDER = re.compile(r"\{\{\$\.(inputs\.parameters|inputs\.artifacts|outputs\.artifacts)\['([^']+)'\](\.path)?\}\}")


def fill(arg: str, params: dict, artifacts: dict, output: Path) -> str:
    """One container argument with KFP's placeholders replaced as its launcher does."""

    def one(m: re.Match) -> str:
        kind, key = m.group(1), m.group(2)
        if kind == "inputs.parameters":
            return str(params[key])  # KFP hands parameters over as text
        return str(artifacts[key] if kind == "inputs.artifacts" else output)

    return PLACEHOLDER.sub(one, arg)


@pytest.mark.slow
def test_kfp_containers_run_churn_as_kfp_would(kfp_python, tmp_path):
    """Each executor's command, placeholders filled in as KFP's launcher does (parameter
    text, artifact paths), run in topological order with nbops's python as python3."""
    src = tmp_path / "project"
    src.mkdir()
    shutil.copy(EXAMPLES / "churn.ipynb", src / "churn.ipynb")
    out = tmp_path / "pipeline.yaml"
    proc = export(src / "churn.ipynb", out, kfp_python, "-p", "n_customers=600", "-p", "n_estimators=10")
    assert proc.returncode == 0, proc.stderr
    spec = yaml.safe_load(out.read_text())
    defaults = {k: v["defaultValue"] for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}
    tasks = spec["root"]["dag"]["tasks"]
    outputs: dict[str, Path] = {}
    done: set[str] = set()
    while len(done) < len(tasks):
        ready = [n for n, t in tasks.items() if n not in done and set(t.get("dependentTasks", [])) <= done]
        assert ready, "the spec's task graph has a cycle"
        for name in sorted(ready):
            task = tasks[name]
            container = spec["deploymentSpec"]["executors"][spec["components"][task["componentRef"]["name"]]["executorLabel"]]["container"]
            artifacts = {k: outputs[v["taskOutputArtifact"]["producerTask"]] for k, v in task.get("inputs", {}).get("artifacts", {}).items()}
            params = {k: defaults[v["componentInputParameter"]] for k, v in task.get("inputs", {}).get("parameters", {}).items()}
            outputs[name] = tmp_path / "kfp-outputs" / name

            command = [sys.executable if c == "python3" else c for c in container["command"]] + [
                fill(a, params, artifacts, outputs[name]) for a in container["args"]
            ]
            run = subprocess.run(command, cwd=src, capture_output=True, text=True, timeout=600)
            assert run.returncode == 0, f"stage {name}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
            done.add(name)

    assert done == {"load", "features", "train", "evaluate"}
    assert (outputs["train"] / "manifest.json").exists() and (outputs["evaluate"] / "executed.ipynb").exists()
    metrics = [json.loads(line) for line in (outputs["evaluate"] / "_nbops" / "metrics.jsonl").read_text().splitlines()]
    assert {m["name"] for m in metrics} == {"accuracy", "f1"}
    executed = json.loads((outputs["load"] / "executed.ipynb").read_text())
    assert "n_customers = 600" in "".join("".join(c["source"]) for c in executed["cells"])
