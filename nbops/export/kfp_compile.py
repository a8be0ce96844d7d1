"""Compile an export plan into a Kubeflow Pipelines v2 spec with the ``kfp`` SDK.

This file imports only the standard library and kfp (with the PyYAML it brings):
kfp pins an older protobuf than nbops's environment may have, so nbops runs it
in whichever Python has kfp, in process or as ``python kfp_compile.py PLAN OUT``.

A stage is a container component (built from a component spec, since the
number of inputs differs per stage): the container runs ``runner.py`` on the
stage notebook with papermill. Pipeline parameters are the pipeline's inputs;
each stage's folder of outputs is its output artifact ``artifacts``, handed to
the stages that read from it as an input artifact named after the producer.
"""

import inspect
import json
import sys

KFP_TYPES = {"int": "Integer", "float": "Float", "bool": "Boolean", "str": "String", "list": "JsonArray", "dict": "JsonObject"}
PY_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}


def _component(plan, stage):
    import yaml
    from kfp import components

    spec = {"stage": stage["name"], "notebook": stage["notebook"], "types": stage["types"], "timeout": stage["timeout"], "cwd": stage["cwd"]}
    args = [json.dumps(spec, sort_keys=True)]
    inputs = []
    for name in stage["parameters"]:
        inputs.append({"name": name, "type": KFP_TYPES.get(plan["params"][name]["type"], "String")})
        args += ["--param", name, {"inputValue": name}]
    for producer in stage["inputs"]:
        inputs.append({"name": f"from_{producer}", "type": "Artifact"})
        args += ["--input", producer, {"inputPath": f"from_{producer}"}]
    args += ["--output", {"outputPath": "artifacts"}]
    text = yaml.safe_dump(
        {
            "name": stage["name"],
            "description": f"nbops stage {stage['name']!r}: papermill on its stage notebook",
            "inputs": inputs,
            "outputs": [{"name": "artifacts", "type": "Artifact"}],
            "implementation": {"container": {"image": plan["image"], "command": ["python3", "-c", plan["runner"]], "args": args}},
        },
        sort_keys=False,
    )
    return components.load_component_from_text(text)


def _apply_resources(task, stage):
    r = stage["resources"]
    if r.get("cpus"):
        task.set_cpu_request(r["cpus"]).set_cpu_limit(r["cpus"])
    if r.get("memory"):
        task.set_memory_request(r["memory"]).set_memory_limit(r["memory"])
    if r.get("gpus"):
        task.set_accelerator_type(r.get("accelerator") or "nvidia.com/gpu").set_accelerator_limit(int(r["gpus"]))
    if r.get("retries"):
        task.set_retry(int(r["retries"]))
    if not stage["cache"]:
        task.set_caching_options(False)
    task.set_display_name(stage["name"])


def build_pipeline(plan):
    from kfp import dsl

    comps = {s["name"]: _component(plan, s) for s in plan["stages"]}

    names = list(plan["params"])

    def pipeline(*args, **kwargs):  # kfp calls it with placeholders, positionally in signature order
        params = {**dict(zip(names, args)), **kwargs}
        tasks = {}
        for stage in plan["stages"]:  # topological order
            kwargs = {name: params[name] for name in stage["parameters"]}
            kwargs.update({f"from_{p}": tasks[p].outputs["artifacts"] for p in stage["inputs"]})
            task = comps[stage["name"]](**kwargs)
            for up in stage["upstream"]:
                if up not in stage["inputs"]:  # an after: edge carries no data
                    task.after(tasks[up])
            _apply_resources(task, stage)
            tasks[stage["name"]] = task

    # kfp reads the pipeline's inputs from the function's signature: give it one per parameter.
    pipeline.__signature__ = inspect.Signature(
        [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p["default"], annotation=PY_TYPES.get(p["type"], str))
            for name, p in plan["params"].items()
        ]
    )
    pipeline.__annotations__ = {name: PY_TYPES.get(p["type"], str) for name, p in plan["params"].items()}
    return dsl.pipeline(name=plan["name"], description=plan["description"])(pipeline)


def compile_plan(plan, out_path):
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(plan), out_path)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        compile_plan(json.load(f), sys.argv[2])
