"""A stage that reads a feature table as ``:latest`` is not reused once the table moved.

The version it read is a dep of the stage (like a data file): the cache re-checks
it against the store's newest version before reusing the stage. A pinned
``:vN`` never moves, so it needs no dep.
"""

from __future__ import annotations

import pandas as pd

from nbops import api, features
from tests.conftest import build_notebook

TRAIN = (
    "import pandas as pd\nfrom nbops import features\n"
    "labels = pd.DataFrame({'customer_id': [1, 2], 'label_time': pd.to_datetime(['2024-02-01', '2024-02-01'])})\n"
    "train = features.training_set(labels, ['spend_stats:REF'], timestamp='label_time')\n"
    "total = float(train['spend'].sum())"
)


def _publish(spend: list[float], near) -> None:
    frame = pd.DataFrame({"customer_id": [1, 2], "event_time": pd.to_datetime(["2024-01-01", "2024-01-02"]), "spend": spend})
    features.publish(frame, "spend_stats", entity="customer_id", timestamp="event_time", near=near)


def _stage(run: dict) -> dict:
    assert run["status"] == "succeeded", run
    return run["stages"][0]


def test_latest_moves_and_the_stage_runs_again_while_a_pinned_version_stays_cached(tmp_path):
    latest = build_notebook(tmp_path, [(TRAIN.replace("REF", "latest"), ["stage:train"]), ("print(total)", ["stage:show"])], "latest.ipynb")
    pinned = build_notebook(tmp_path, [(TRAIN.replace("REF", "v1"), ["stage:train"]), ("print(total)", ["stage:show"])], "pinned.ipynb")
    _publish([1.0, 2.0], latest)
    assert _stage(api.run(latest))["scalars"]["total"] == 3.0
    assert _stage(api.run(pinned))["scalars"]["total"] == 3.0
    assert _stage(api.run(latest))["status"] == "cached"

    _publish([10.0, 20.0], latest)  # v2: someone published newer features
    again = _stage(api.run(latest))
    assert again["status"] == "succeeded" and again["scalars"]["total"] == 30.0
    assert again["reason"]["kind"] == "input" and "feature table spend_stats:latest moved v1 → v2" in again["reason"]["detail"]
    assert _stage(api.run(pinned))["status"] == "cached"  # v1 is v1 forever
    assert _stage(api.run(latest))["status"] == "cached"  # and v2 is now what the record says
