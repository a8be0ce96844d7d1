"""static_reads: the paths a stage's code spells out for common readers."""

from __future__ import annotations

from nbops.graph.reads import static_reads


def test_literals_passed_to_common_readers():
    source = """
import pandas as pd, numpy as np, joblib, torch, glob, os
import pyarrow.parquet as pq
from PIL import Image
df = pd.read_csv("data/train.csv")
p = pd.read_parquet(path="data/p.parquet")
arr = np.load("arr.npy")
m = joblib.load("model.joblib")
t = torch.load("weights.pt")
img = Image.open("img.png")
tab = pq.read_table("t.parquet")
files = glob.glob("data/*.csv")
names = os.listdir("raw")
with open("notes.txt") as f:
    pass
q = pd.read_sql("SELECT * FROM x", conn)
print("not a read.csv")
"""
    assert static_reads(source, {}) == [
        "data/train.csv",
        "data/p.parquet",
        "arr.npy",
        "model.joblib",
        "weights.pt",
        "img.png",
        "t.parquet",
        "data/*.csv",
        "raw",
        "notes.txt",
    ]


def test_parameters_names_fstrings_and_path_joins():
    source = """
from pathlib import Path
import os
import pandas as pd
base = "data"
a = pd.read_csv(data_path)
b = pd.read_csv(f"{base}/{split}.csv")
c = pd.read_csv(os.path.join(base, "extra.csv"))
d = (Path(base) / "notes.md").read_text()
e = Path("cfg.yaml").open()
f = pd.read_csv(f"{unknown}.csv")
"""
    found = static_reads(source, {"data_path": "data/train.csv", "split": "test", "epochs": 3})
    assert found == ["data/train.csv", "data/test.csv", "data/extra.csv", "data/notes.md", "cfg.yaml"]


def test_function_arguments_shadow_outer_names():
    source = """
import pandas as pd
path = "outer.csv"
def load(path):
    return pd.read_csv(path)
def load_default():
    return pd.read_csv(path)
"""
    assert static_reads(source, {}) == ["outer.csv"]


def test_unparsable_source_reads_nothing():
    assert static_reads("df = pd.read_csv(", {}) == []
