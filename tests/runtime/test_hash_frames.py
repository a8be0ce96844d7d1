"""DataFrames between stages: the same dtypes back, columns read from the file's own
pages (no full copy), and still writable without the stored object ever changing."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from nbops.runtime.files import digest_matches
from nbops.runtime.marshal import load_value, save_value_hashed
from nbops.runtime.serializers import _load_frame

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")


def mixed(n: int = 200_000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    words = np.array([f"customer-{i:05d}" for i in range(997)], dtype=object)
    return pd.DataFrame(
        {
            "name": pd.array(words[rng.integers(0, len(words), n)], dtype="str"),  # pandas 3's default string dtype
            "city": pd.Categorical.from_codes(rng.integers(0, 3, n), ["Lyon", "Oslo", "Lima"]),
            "plan": pd.Categorical.from_codes(rng.integers(0, 4, n), ["free", "pro", "team", "corp"], ordered=True),
            "spend": rng.random(n),
            "visits": rng.integers(0, 100, n),
            "seen": pd.date_range("2024-01-01", periods=n, freq="min"),
            "churned": rng.random(n) < 0.2,
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            "maybe": pd.array([None if i % 7 == 0 else f"v{i % 5}" for i in range(n)], dtype="str"),
        },
        index=pd.RangeIndex(10, 10 + n),
    )


def mapped_ranges(path) -> list[tuple[int, int]]:
    """The address ranges this process maps from ``path``."""
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith(str(path)):
                lo, hi = line.split()[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def inside(address: int, ranges) -> bool:
    return any(lo <= address < hi for lo, hi in ranges)


@linux_only
def test_string_and_categorical_frame_round_trips_zero_copy(tmp_path):
    frame = mixed()
    path, serializer, digest = save_value_hashed(tmp_path, "df", frame)
    back = _load_frame(path)  # the path load_value takes (its fallback would hide a regression here)
    pd.testing.assert_frame_equal(back, frame)
    assert back.dtypes.to_dict() == frame.dtypes.to_dict() and back.index.equals(frame.index)
    ranges = mapped_ranges(path)
    assert ranges, "the file is not memory-mapped"
    # Numeric columns and categorical codes are the file's pages, not copies ...
    for column in ("spend", "visits"):
        assert inside(back[column].to_numpy().ctypes.data, ranges), column
    for column in ("city", "plan"):
        assert inside(back[column].array.codes.ctypes.data, ranges), column
    # ... and so are pandas 3 strings: Arrow arrays over the mapped buffers.
    strings = back["name"].array._pa_array.chunk(0)
    assert all(inside(b.address, ranges) for b in strings.buffers() if b is not None and b.size)
    # Bytes Arrow cannot hand over as they are (bit-packed booleans) are copies: the only ones.
    assert not inside(back["churned"].to_numpy().ctypes.data, ranges)
    assert load_value(path, serializer).equals(frame)
    assert digest_matches(path, digest)


def test_loaded_frames_take_assignment_and_the_object_never_changes(tmp_path):
    frame = mixed(5000)
    path, serializer, digest = save_value_hashed(tmp_path, "df", frame)
    path.chmod(0o444)  # as in objects/: read-only, hard-linked into run folders
    df = load_value(path, serializer)
    df.loc[10, "spend"] = 42.0
    df.iloc[1, df.columns.get_loc("visits")] = 7
    df.loc[11, "city"] = "Lima"
    df.loc[12, "seen"] = pd.Timestamp("2030-01-01")
    df.loc[13, "name"] = "someone else"
    df.fillna({"score": 0.0}, inplace=True)
    df.update(pd.DataFrame({"visits": [99]}, index=[14]))
    df["spend"].to_numpy()  # pandas 3: a read-only view, as for any frame
    assert df.loc[10, "spend"] == 42.0 and df.loc[11, "visits"] == 7 and df.loc[11, "city"] == "Lima"
    assert df.loc[14, "visits"] == 99 and df["score"].notna().all()
    assert digest_matches(path, digest), "a change in the loaded frame reached the stored object"
    pd.testing.assert_frame_equal(load_value(path, serializer), frame)


def test_series_empty_frames_and_files_written_in_many_batches(tmp_path):
    series = pd.Series(np.arange(10.0), name="x")
    path, serializer, _ = save_value_hashed(tmp_path, "s", series)
    pd.testing.assert_series_equal(load_value(path, serializer).iloc[:, 0], series)
    for empty in (pd.DataFrame({"a": pd.Series([], dtype="float64")}), pd.DataFrame(index=pd.RangeIndex(3))):
        path, serializer, _ = save_value_hashed(tmp_path, "e", empty)
        pd.testing.assert_frame_equal(load_value(path, serializer), empty)
    # Artifacts of earlier nbops (write_feather: a batch every 64K rows) still load, as copies.
    frame = mixed(3000)
    old = tmp_path / "old.arrow"
    feather.write_feather(pa.Table.from_pandas(frame, preserve_index=None), str(old), compression="uncompressed", chunksize=1000)
    pd.testing.assert_frame_equal(load_value(old, "pandas"), frame)


def test_one_record_batch_per_table_chunk(tmp_path):
    frame = pd.DataFrame({"a": np.arange(200_000)})
    path, _, _ = save_value_hashed(tmp_path, "df", frame)
    with pa.memory_map(str(path)) as source:
        assert pa.ipc.open_file(source).num_record_batches == 1  # write_feather would have written 4


def test_extension_dtypes_round_trip_and_take_assignment(tmp_path):
    n = 6
    frame = pd.DataFrame(
        {
            "I": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "B": pd.array([True, None, False, True, True, False], dtype="boolean"),
            "tz": pd.date_range("2020", periods=n, tz="Europe/Paris"),
            "td": pd.to_timedelta(np.arange(n), unit="s"),
            "per": pd.period_range("2020-01", periods=n, freq="M"),
            "ad": pd.array(range(n), dtype="int64[pyarrow]"),
        },
        index=pd.Index(list("uvwxyz"), name="key"),
    )
    path, serializer, _ = save_value_hashed(tmp_path, "x", frame)
    back = load_value(path, serializer)
    pd.testing.assert_frame_equal(back, frame)
    for column, value in [
        ("I", 9),
        ("B", False),
        ("tz", pd.Timestamp("2021", tz="Europe/Paris")),
        ("td", pd.Timedelta(5, "s")),
        ("per", pd.Period("2021-01", freq="M")),
        ("ad", 7),
    ]:
        back.loc["u", column] = value
        assert back.loc["u", column] == value, column
    pd.testing.assert_frame_equal(load_value(path, serializer), frame)


def test_big_arrays_load_mapped_and_writable_without_touching_the_object(tmp_path):
    array = np.arange(2_000_000, dtype=np.float64).reshape(1000, 2000)
    path, serializer, digest = save_value_hashed(tmp_path, "a", array)
    path.chmod(0o444)
    back = load_value(path, serializer)
    assert type(back) is np.ndarray and back.flags.writeable and np.array_equal(back, array)
    if sys.platform == "linux":
        assert inside(back.ctypes.data, mapped_ranges(path))
    back[0, 0] = -1.0
    assert digest_matches(path, digest) and load_value(path, serializer)[0, 0] == 0.0
