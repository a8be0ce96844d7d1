"""Writes the Ray test notebooks of this folder (python tests/ray/notebooks/_generate.py).

The .ipynb files are committed; this script documents how each was made.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).parent
# The same small notebook builder as the main fixtures (tests/notebooks/_generate.py).
sys.path.insert(0, str(HERE.parents[1] / "notebooks"))
from _generate import nb  # noqa: E402

FIXTURES = {
    # load -> (left on a GPU, right on CPU, in parallel) -> join; load reads a data
    # file by a relative path, which must reach the workers with the working_dir.
    "fanout": nb(
        (["parameters"], "pause = 3.0\nscale = 2"),
        (["setup"], "import os\nimport time\nimport nbops"),
        (["stage:load"], "with open(nbops.input('numbers.txt')) as f:\n    rows = [int(x) * scale for x in f.read().split()]"),
        (
            ["stage:left", "gpus:1"],
            "time.sleep(pause)\nleft_cuda = os.environ.get('CUDA_VISIBLE_DEVICES', '')\nleft = sum(rows)\nnbops.log_metric('left_sum', left)",
        ),
        (["stage:right"], "time.sleep(pause)\nright = len(rows)\nnbops.log_artifact('right has %d rows' % right, 'right.txt')"),
        (["stage:join"], "total = left + right\nseen_cuda = left_cuda"),
        (["metrics"], "total"),
    ),
    # One stage that sleeps on its first attempt (on the node with the memory it
    # asks for), so a test can kill that node under it; the retry finds the marker.
    "lost_node": nb(
        (["parameters"], "marker = 'marker.txt'\nnap = 120.0"),
        (["setup"], "import os\nimport time"),
        (["stage:prepare"], "base = 41"),
        (
            ["stage:victim", "retries:1", "memory:2G"],
            "first = not os.path.exists(marker)\n"
            "if first:\n"
            "    with open(marker, 'w') as f:\n"
            "        f.write(str(os.getppid()))\n"
            "    time.sleep(nap)\n"
            "answer = base + 1",
        ),
        (["metrics"], "answer"),
    ),
    # A stage's own exception, and a stage no node of the test cluster can hold.
    "failing": nb(
        (["stage:ok"], "x = 1"),
        (["stage:boom"], "y = x + 1\nraise ValueError('bad row count: %d' % y)"),
        (["stage:greedy", "gpus:4"], "z = 3"),
    ),
}


if __name__ == "__main__":
    for name, doc in FIXTURES.items():
        nbformat.validate(doc)
        nbformat.write(doc, HERE / f"{name}.ipynb")
    (HERE / "numbers.txt").write_text("1 2 3 4 5 6 7 8 9 10\n")
