"""Writes the fixture notebooks of this folder (python tests/notebooks/_generate.py).

The .ipynb files are committed; this script documents how each was made and
lets a reader change one in a reviewable way.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent


def nb(*cells):
    out = []
    for i, c in enumerate(cells):
        if isinstance(c, str):
            cell = new_markdown_cell(c)
        else:
            tags, src = c
            cell = new_code_cell(src)
            if tags:
                cell.metadata["tags"] = list(tags)
        cell["id"] = f"c{i:02d}"
        out.append(cell)
    doc = new_notebook(cells=out)
    doc.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return doc


FIXTURES = {
    # -- every tag of the vocabulary -------------------------------------------------
    "tags_all": nb(
        (["parameters"], "n = 10\nscale = 2.5\nlabel = 'x'\nflag = True\nsizes = [1, 2]\nopts = {'a': 1}\nnothing = None"),
        (["setup"], "import math\n\ndef double(v):\n    return v * scale"),
        (["stage:make", "cpus:2", "memory:1Gi", "timeout:30"], "values = list(range(n))"),
        ([], "total = sum(values)"),
        (["skip"], "print(values)"),
        (["stage:train", "gpus:1", "retries:2", "cache:off"], "model = double(total) + math.pi"),
        (["stage:report", "after:make"], "summary = f'{label}:{model:.1f}:{flag}:{sizes}:{opts}:{nothing}'"),
        (["metrics"], "model\nlen(summary)"),
    ),
    # -- Kale's vocabulary, unchanged ------------------------------------------------------
    "kale": nb(
        (["imports"], "import statistics"),
        (["functions"], "def mean_of(xs):\n    return statistics.mean(xs)"),
        (["pipeline-parameters"], "k = 3"),
        (["block:load"], "data = [1, 2, 3, 4] * k"),
        (["skip"], "data[:2]"),
        (["step:train", "prev:load", "limit:nvidia.com/gpu:1"], "avg = mean_of(data)"),
        (["block:evaluate", "prev:train"], "score = avg / k"),
        (["pipeline-metrics"], "print(score)\nprint(avg)"),
    ),
    # -- the %%stage magic form ------------------------------------------------------------
    "magic": nb(
        (["parameters"], "epochs = 2"),
        ([], "%%stage prepare\nitems = [1, 2, 3]"),
        ([], "%%stage train --after prepare --gpus 1 --cpus 2 --memory 2G --timeout 60 --retries 1 --no-cache\nweights = [i * epochs for i in items]"),
        ([], "%%setup\nimport os"),
        ([], "%%skip\nprint(weights)"),
        ([], "%%stage evaluate\nresult = sum(weights)"),
    ),
    # -- in-place changes ---------------------------------------------------------------------
    "mutation": nb(
        (["setup"], "import pandas as pd"),
        (["stage:load"], "train = pd.DataFrame({'a': [1, 2, 3]})\ntest = pd.DataFrame({'a': [4, 5]})\nitems = []\ncounter = 0\nconfig = {}"),
        (["stage:features"], "for d in [train, test]:\n    d['b'] = d['a'] * 2\nitems.append(len(train))\ncounter += 1\nconfig['k'] = 'v'"),
        (["stage:clean"], "train.drop(columns=['a'], inplace=True)"),
        (["stage:use"], "out = (list(train.columns), list(test.columns), items, counter, config)\nprint(out)"),
    ),
    # -- IPython syntax ---------------------------------------------------------------------------
    "ipython_syntax": nb(
        (["stage:a"], "%matplotlib inline\nx = 1\n!echo hello\nlisting = !echo hi"),
        ([], "x?"),
        ([], "%%time\ny = x + 1"),
        (["stage:b"], "z = y + len(listing)"),
        ([], "%%bash\necho not python"),
    ),
    # -- cells before the first stage tag ------------------------------------------------------------
    "implicit": nb(
        (["parameters"], "base = 5"),
        ([], "start_value = base * 2"),
        (["stage:finish"], "final = start_value + 1"),
    ),
    # -- errors ------------------------------------------------------------------------------------------
    "err_no_stages": nb(([], "x = 1"), ([], "y = x")),
    "err_unknown_after": nb((["stage:a"], "x = 1"), (["stage:b", "after:nope"], "y = x")),
    "err_cycle": nb((["stage:a"], "x = 1"), (["stage:b"], "y = x"), (["stage:a"], "z = y")),
    "err_after_cycle": nb((["stage:a", "after:b"], "x = 1"), (["stage:b"], "y = x")),
    "err_undefined": nb((["stage:a"], "x = 1"), (["stage:b"], "y = x + missing_name")),
    "err_read_before_defined": nb((["stage:a"], "x = later + 1"), (["stage:b"], "later = 2")),
    "err_skip_only": nb((["skip"], "helper = 3"), (["stage:a"], "x = helper")),
    "err_syntax": nb((["stage:a"], "x = 1"), (["stage:b"], "def broken(:\n    pass")),
    "err_bad_stage_name": nb((["stage:../../x"], "x = 1")),
    "err_two_parameters": nb((["parameters"], "a = 1"), (["parameters"], "b = 2"), (["stage:s"], "c = a + b")),
    "err_conflicting_resources": nb((["stage:a", "gpus:1"], "x = 1"), (["gpus:2"], "y = x")),
    "err_param_not_literal": nb((["parameters"], "import os\npath = os.getcwd()"), (["stage:a"], "x = path")),
    # -- runs ----------------------------------------------------------------------------------------------
    "run_fail": nb(
        (["parameters"], "fail = True"),
        (["stage:a"], "x = 1"),
        (["stage:b"], "y = x + 1\nif fail:\n    raise ValueError('boom in b')"),
        (["stage:c"], "z = y + 1"),
        (["stage:d"], "w = x * 10"),
    ),
    "run_kernel_dies": nb(
        (["stage:a"], "x = 1"),
        (["stage:b"], "import os\nos._exit(1)"),
        (["stage:c", "after:b"], "y = x"),
    ),
    "run_slow": nb(
        (["parameters"], "seconds = 8.0"),
        (["stage:a"], "x = 1"),
        (["stage:b"], "import time\ntime.sleep(seconds)\ny = x + 1"),
        (["stage:c"], "z = y + 1"),
    ),
    "run_timeout": nb(
        (["stage:a", "timeout:2"], "import time\ntime.sleep(30)\nx = 1"),
    ),
    "run_retry": nb(
        (["parameters"], "marker = 'retry-marker.txt'"),
        (
            ["stage:flaky", "retries:1"],
            "import os\nfirst = not os.path.exists(marker)\nopen(marker, 'w').write('seen')\nif first:\n    raise RuntimeError('first attempt fails')\nok = True",
        ),
    ),
    "run_params": nb(
        (["parameters"], "count = 3\nrate = 0.5\nname = 'plain'\nenabled = False\nitems = [1, 2]\napi_token = 'dev-token'"),
        (["setup"], "import nbops"),
        (
            ["stage:echo"],
            "import json\nrecord = json.dumps({'count': count, 'rate': rate, 'name': name, 'enabled': enabled, 'items': items, 'token_len': len(api_token)})\nopen('params-seen.json', 'w').write(record)\nnbops.log_metric('count_x2', count * 2)",
        ),
    ),
    "run_data_input": nb(
        (["setup"], "import pandas as pd\nimport nbops"),
        (["stage:load"], "df = pd.read_csv(nbops.input('data/train.csv'))"),
        (["stage:stats"], "rows = len(df)\ntotal = float(df.value.sum())"),
        (["metrics"], "rows\ntotal"),
    ),
    "run_gpu": nb(
        (["stage:cpu_stage"], "import os\ncpu_cvd = os.environ.get('CUDA_VISIBLE_DEVICES')"),
        (["stage:gpu_stage", "gpus:1"], "import os\ngpu_cvd = os.environ.get('CUDA_VISIBLE_DEVICES')"),
    ),
    "run_unserializable": nb(
        (["stage:a"], "handle = open(__import__('os').devnull)\ngen = (i for i in range(3))"),
        (["stage:b"], "print(handle, list(gen))"),
    ),
    "run_parallel": nb(
        (["stage:root"], "import time\nbase = 1"),
        (["stage:left"], "import time\ntime.sleep(2)\nleft_value = base + 1"),
        (["stage:right"], "import time\ntime.sleep(2)\nright_value = base + 2"),
        (["stage:join"], "total = left_value + right_value"),
    ),
}


def main() -> None:
    for name, doc in FIXTURES.items():
        nbformat.write(doc, HERE / f"{name}.ipynb")
    (HERE / "err_bad_json.ipynb").write_text('{"cells": [ {"cell_type": "code", "source": "x = 1"  ')
    old = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": []}]}
    (HERE / "err_nbformat3.ipynb").write_text(json.dumps(old))
    (HERE / "data").mkdir(exist_ok=True)
    (HERE / "data" / "train.csv").write_text("value\n1\n2\n3\n")


if __name__ == "__main__":
    main()
