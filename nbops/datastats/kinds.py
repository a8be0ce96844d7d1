"""Which kind a column is, and its values as flat numpy arrays of that kind.

Shared by the summary and the drift table so both read a column the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt

# What kind of column a Series is, decided once and used by every statistic.
NUMERIC = "numeric"
BOOLEAN = "boolean"
CATEGORICAL = "categorical"
TEXT = "text"
DATETIME = "datetime"
EMPTY = "empty"  # every value is null: nothing to draw

__all__ = ["column_kind", "datetime_values", "float_values", "label_codes", "NAT", "NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT", "DATETIME", "EMPTY"]

_NUMERIC_OBJECT = {"integer", "floating", "mixed-integer-float", "decimal"}
NAT = np.iinfo(np.int64).min  # how numpy stores NaT in int64


def column_kind(series: pd.Series, n_null: int | None = None) -> str:
    """One of the kinds above for ``series``."""
    if n_null is None:
        n_null = int(series.isna().sum())
    if len(series) and n_null == len(series):
        return EMPTY
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pdt.is_bool_dtype(dtype):
        return BOOLEAN
    if pdt.is_datetime64_any_dtype(dtype):
        return DATETIME
    if pdt.is_timedelta64_dtype(dtype):
        return NUMERIC  # as seconds
    if pdt.is_numeric_dtype(dtype) and not pdt.is_complex_dtype(dtype):
        return NUMERIC
    if pdt.is_object_dtype(dtype):
        # An object column of plain numbers (e.g. read from JSON) is summarized
        # as numbers; infer_dtype scans in C and stops early on mixed values.
        inferred = pdt.infer_dtype(series, skipna=True)
        if inferred in _NUMERIC_OBJECT:
            return NUMERIC
        if inferred == "boolean":
            return BOOLEAN
    return TEXT


def float_values(series: pd.Series) -> np.ndarray:
    """A numeric column as float64, nulls as NaN (timedeltas in seconds)."""
    dtype = series.dtype
    if pdt.is_timedelta64_dtype(dtype):
        return series.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
    if pdt.is_object_dtype(dtype):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if dtype == np.float64:
        return series.to_numpy()
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def datetime_values(series: pd.Series) -> tuple[np.ndarray, str, str | None]:
    """A datetime column as int64 ticks (NaT as ``NAT``), their unit and time zone.

    Tz-aware columns become wall time in their own zone, which is what a
    histogram of "when" should show.
    """
    tz = series.dt.tz
    naive = series.dt.tz_localize(None) if tz is not None else series
    values = naive.to_numpy()
    unit = np.datetime_data(values.dtype)[0]
    return values.view(np.int64), unit, (str(tz) if tz is not None else None)


def label_codes(series: pd.Series) -> tuple[np.ndarray, Any]:
    """Integer codes (-1 for null) and the distinct values they index.

    The distinct values stay a pandas array: boxing a million unique strings
    as Python objects would cost more than the factorizing.

    Categoricals keep their categories (unobserved ones included); anything
    else is factorized, falling back to ``str`` for unhashable values.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), series.cat.categories
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # lists, dicts, sets in an object column
        codes, uniques = pd.factorize(series.map(str, na_action="ignore"), use_na_sentinel=True)
    return np.asarray(codes), uniques
