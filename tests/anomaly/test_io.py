"""CSV, label and split readers: nothing lost, nothing misread (issue 13).

Every case writes a small file to ``tmp_path`` and calls the reader directly; a user mistake is one
:class:`UsageError` line naming the argument, file, row or column.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pandas as pd
import pytest

from h0._errors import UsageError
from h0.anomaly._io import as_values, bundled_paths, load_csv, load_labels, train_rows

STAMPS = [f"2024-01-01 00:{i:02d}:00" for i in range(6)]
VALUES = [0.5, 1.25, -3.0, 2.0, 0.012573, 7.0]


def write(tmp_path, text, name="s.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def plain_csv(tmp_path, sep=",", decimal=".", header=True):
    lines = [f"timestamp{sep}value"] if header else []
    lines += [
        f"{t}{sep}{str(v).replace('.', decimal)}" for t, v in zip(STAMPS, VALUES, strict=True)
    ]
    return write(tmp_path, "\n".join(lines) + "\n")


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and len(message) < 400, message
    return message


# ------------------------------------------------------------------ good input stays as it was


def test_bundled_series_reads_as_before():
    csv, _ = bundled_paths()
    series = load_csv(csv, keep_order=True)
    frame = pd.read_csv(csv)
    assert series.columns == ["value"] and series.time_column == "timestamp"
    np.testing.assert_array_equal(series.values[:, 0], frame["value"].to_numpy())
    assert series.times.equals(pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])))
    assert series.notes == []


# ------------------------------------------------------------------ 1. mixed time-zone offsets


def test_mixed_offsets_are_converted_to_utc_with_a_note(tmp_path):
    # A DST change: +01:00 in winter, +02:00 in summer. pandas refuses ("Mixed timezones").
    path = write(
        tmp_path,
        "timestamp,value\n2024-03-31T01:00:00+01:00,1\n2024-03-31T03:30:00+02:00,2\n"
        "2024-03-31T04:00:00+02:00,3\n",
    )
    series = load_csv(path)
    assert [str(t) for t in series.times] == [
        "2024-03-31 00:00:00",
        "2024-03-31 01:30:00",
        "2024-03-31 02:00:00",
    ]
    (note,) = series.notes
    assert "'timestamp' mixes time-zone offsets (+01:00, +02:00)" in note and "UTC" in note


def test_offsets_mixed_with_naive_times_say_how_naive_ones_were_read(tmp_path):
    path = write(tmp_path, "timestamp,value\n2024-01-01T00:00:00+01:00,1\n2024-01-01T00:30:00,2\n")
    series = load_csv(path)
    assert [str(t) for t in series.times] == ["2023-12-31 23:00:00", "2024-01-01 00:30:00"]
    assert "without an offset were taken as UTC" in series.notes[0]


# ------------------------------------------------------------------ 2. labels as rows, validated


def labels_file(tmp_path, windows):
    return write(tmp_path, json.dumps(windows), "labels.json")


TIMES = pd.date_range("2024-01-01", periods=10, freq="h")


def test_labels_come_back_as_inclusive_row_ranges(tmp_path):
    path = labels_file(
        tmp_path,
        {
            "dir/s.csv": [
                ["2024-01-01 06:00", "2024-01-01 09:00"],
                ["2024-01-01 01:30", "2024-01-01 03:00"],
            ]
        },
    )
    assert load_labels(path, TIMES, "s.csv") == [(2, 3), (6, 9)]


def test_labels_with_offsets_are_read_in_utc(tmp_path):
    path = labels_file(tmp_path, [["2024-01-01T03:00:00+01:00", "2024-01-01T04:00:00+01:00"]])
    assert load_labels(path, TIMES, "s.csv") == [(2, 3)]


def test_labels_as_row_numbers_for_a_series_without_times(tmp_path):
    path = labels_file(tmp_path, [[4, 6], [0, 0]])
    assert load_labels(path, None, "s.csv", n_rows=10) == [(0, 0), (4, 6)]
    assert load_labels(path, TIMES, "s.csv") == [(0, 0), (4, 6)]  # rows work with times too


@pytest.mark.parametrize(
    ("windows", "match"),
    [
        (
            [
                ["2024-01-01 01:00", "2024-01-01 02:00"],
                ["2024-01-01T03:00+00:00", "2024-01-01 04:00"],
            ],
            r"window 1 .* one bound with a time-zone offset and one without",
        ),
        ([["2024-01-01 01:00", None]], r"window 0 .* empty \(null\) bound"),
        ([["NaT", "2024-01-01 02:00"]], r"window 0 has 'NaT' as a bound, not a time"),
        ([["2024-01-01 01:00", "later"]], r"window 0 has an unparsable time 'later'"),
        ([[1, "2024-01-01 02:00"]], r"window 0 .* mixes a row number and a time"),
        ([[1.5, 3]], r"window 0 .* a row number \(a whole number\)"),
        ([[1, 2, 3]], r"window 0 is \[1, 2, 3\], not \[start, end\]"),
        ([[5, 3]], r"window 0 ends \(row 3\) before it starts \(row 5\)"),
        ([[8, 10]], r"window 0 \(rows 8 to 10\) lies outside the series \(rows 0 to 9\)"),
        (
            [["2024-01-01 01:00", "2024-01-01 01:00"], ["2024-01-01 02:10", "2024-01-01 02:50"]],
            r"window 1 \(2024-01-01 02:10:00 to 2024-01-01 02:50:00\) covers no row",
        ),
        ([["2030-01-01", "2030-01-02"]], r"window 0 .* lies outside the series"),
    ],
)
def test_bad_windows_name_file_and_window(tmp_path, windows, match):
    path = labels_file(tmp_path, windows)
    with pytest.raises(UsageError, match=match) as error:
        load_labels(path, TIMES, "s.csv")
    assert one_line(error).startswith(f"--labels {path}: ")


def test_timestamp_labels_need_a_time_column(tmp_path):
    path = labels_file(tmp_path, [["2024-01-01 01:00", "2024-01-01 02:00"]])
    with pytest.raises(UsageError, match=r"window 0 is given in timestamps, but the series has no"):
        load_labels(path, None, "s.csv", n_rows=10)
    assert load_labels(labels_file(tmp_path, []), None, "s.csv", n_rows=10) == []


def test_train_rows_timestamp_and_row_number():
    assert train_rows("2024-01-01 03:00", TIMES) == 4  # rows 0..3, up to and including
    assert train_rows("2024-01-01 03:30", TIMES) == 4
    assert train_rows("2024-01-01T04:00:00+01:00", TIMES) == 4  # 03:00 UTC
    assert train_rows("3", None, n_rows=10) == 4
    assert train_rows(" 8 ", None, n_rows=10) == 9


@pytest.mark.parametrize(
    ("value", "times", "match"),
    [
        ("soon", TIMES, r"--train-until 'soon' is not a timestamp"),
        ("NaT", TIMES, r"--train-until 'NaT' is not a timestamp"),
        ("2099-01-01", TIMES, r"at or after the last timestamp .* nothing would be left to score"),
        ("2023-01-01", TIMES, r"before the first timestamp .* nothing would be left to train on"),
        ("2024-01-31", None, r"no time column, so give a row number \(0 to 8\)"),
        ("9", None, r"--train-until 9 is at or after the last row \(9\)"),
        ("-1", None, r"--train-until -1: rows are numbered from 0"),
    ],
)
def test_train_rows_errors(value, times, match):
    with pytest.raises(UsageError, match=match) as error:
        train_rows(value, times, n_rows=10)
    one_line(error)


# ------------------------------------------------------------------ 3. epoch times


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_epoch_times_unit_from_magnitude(tmp_path, unit, scale):
    epoch = [1_700_000_000 + 60 * i for i in range(6)]
    rows = "\n".join(f"{e * scale},{v}" for e, v in zip(epoch, VALUES, strict=True))
    series = load_csv(write(tmp_path, "timestamp,value\n" + rows + "\n"))
    assert str(series.times[0]) == "2023-11-14 22:13:20"
    assert (np.diff(series.times) == pd.Timedelta("1min")).all()  # whatever the unit
    assert series.columns == ["value"]
    words = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
    assert series.notes == [
        f"column 'timestamp' holds Unix epoch {words[unit]}; read as UTC times (pass --time-unit "
        "to override)."
    ]


def test_float_epoch_seconds_and_explicit_unit(tmp_path):
    path = write(tmp_path, "time,value\n1700000000.5,1\n1700000001.5,2\n")
    series = load_csv(path)
    assert str(series.times[0]) == "2023-11-14 22:13:20.500000"
    small = write(tmp_path, "time,value\n0,1\n30,2\n60,3\n", "small.csv")
    with pytest.raises(
        UsageError, match=r"column 'time' holds numbers from 0 to 60, too small"
    ) as e:
        load_csv(small)
    assert "--time-unit" in one_line(e)
    series = load_csv(small, time_unit="s")
    assert [str(t) for t in series.times] == [
        "1970-01-01 00:00:00",
        "1970-01-01 00:00:30",
        "1970-01-01 00:01:00",
    ]
    assert series.notes == []
    with pytest.raises(UsageError, match=r"--time-unit 'h': give one of s, ms, us, ns"):
        load_csv(small, time_unit="h")


def test_yyyymmdd_numbers_are_dates_not_epochs(tmp_path):
    path = write(tmp_path, "date,value\n20240130,1\n20240131,2\n20240201,4\n")
    series = load_csv(path)
    assert [str(t.date()) for t in series.times] == ["2024-01-30", "2024-01-31", "2024-02-01"]
    assert series.notes == ["column 'date' holds dates written as YYYYMMDD."]


def test_epoch_units_mixed_are_refused(tmp_path):
    path = write(tmp_path, "timestamp,value\n1700000000,1\n1700000060000,2\n")
    with pytest.raises(UsageError, match=r"of mixed magnitudes"):
        load_csv(path)


# ------------------------------------------------------------------ 4. delimiter and decimal mark


@pytest.mark.parametrize(
    ("sep", "decimal", "note"),
    [
        (";", ",", "read as ';'-separated with decimal commas"),
        (";", ".", "read as ';'-separated;"),
        ("\t", ".", "read as tab-separated"),
        ("|", ",", "read as '|'-separated with decimal commas"),
        (",", ".", None),
    ],
)
def test_delimiter_and_decimal_mark_are_sniffed(tmp_path, sep, decimal, note):
    series = load_csv(plain_csv(tmp_path, sep, decimal))
    np.testing.assert_array_equal(series.values[:, 0], VALUES)  # 0,012573 is not 12573
    assert series.columns == ["value"] and series.times is not None
    assert (series.notes[0].startswith(note)) if note else series.notes == []


def test_quoted_decimal_commas_in_a_comma_file(tmp_path):
    rows = "".join(
        f'{t},"{str(v).replace(".", ",")}"\n' for t, v in zip(STAMPS, VALUES, strict=True)
    )
    series = load_csv(write(tmp_path, "timestamp,value\n" + rows))
    np.testing.assert_array_equal(series.values[:, 0], VALUES)
    assert series.notes == ["read with decimal commas (0,5 is 0.5); pass --decimal to override."]


def test_explicit_delimiter_and_decimal(tmp_path):
    path = plain_csv(tmp_path, ";", ",")
    series = load_csv(path, delimiter=";", decimal=",")
    np.testing.assert_array_equal(series.values[:, 0], VALUES)
    assert series.notes == []


def test_wrong_delimiter_names_the_likely_one(tmp_path):
    path = plain_csv(tmp_path, ";", ".")
    with pytest.raises(UsageError, match=r"the file looks ';'-separated \(pass --delimiter ';'\)"):
        load_csv(path, delimiter=",")
    with pytest.raises(UsageError, match=r"column 'timestamp;value' is not numeric.*looks ';'-sep"):
        load_csv(path, delimiter=",", value_columns=["timestamp;value"])


def test_unquoted_decimal_commas_in_a_comma_file_are_not_misread(tmp_path):
    # pandas would take the first field as the index and read value 12573 for 0,012573.
    path = plain_csv(tmp_path, ",", ",")
    with pytest.raises(UsageError, match=r"line 2 has 3 fields but the header has 2") as error:
        load_csv(path)
    assert "decimal commas" in one_line(error)


# ------------------------------------------------------------------ 5. header, column names


def test_file_without_header_is_detected(tmp_path):
    series = load_csv(plain_csv(tmp_path, header=False))
    assert len(series.values) == 6  # row 1 is data, not a header
    np.testing.assert_array_equal(series.values[:, 0], VALUES)
    assert series.columns == ["column_2"] and series.time_column == "column_1"
    assert "read without one: columns column_1 to column_2" in series.notes[0]


def test_numbers_only_without_header(tmp_path):
    path = write(tmp_path, "1.5,2\n2.5,4\n0.5,8\n")
    series = load_csv(path)
    assert series.columns == ["column_1", "column_2"] and series.times is None
    np.testing.assert_array_equal(series.values, [[1.5, 2], [2.5, 4], [0.5, 8]])
    assert load_csv(path, value_columns=["column_2"]).columns == ["column_2"]
    forced = load_csv(path, header=True)  # the caller says line 1 is a header
    assert forced.columns == ["1.5", "2"] and len(forced.values) == 2
    assert load_csv(path, header=False).notes == []


def test_a_column_with_a_comma_in_its_name(tmp_path):
    path = write(
        tmp_path,
        'timestamp,"a,b",c\n' + "".join(f"{t},{i},{i * i}\n" for i, t in enumerate(STAMPS)),
    )
    assert load_csv(path, value_columns=["a,b"]).columns == ["a,b"]
    plain = write(
        tmp_path,
        "timestamp,a,b\n" + "".join(f"{t},{i},{-i}\n" for i, t in enumerate(STAMPS)),
        "p.csv",
    )
    assert load_csv(plain, value_columns=["a,b"]).columns == ["a", "b"]  # not a column: split
    with pytest.raises(UsageError, match=r"--value-column 'x' not found; the columns are"):
        load_csv(plain, value_columns=["a,x"])


# ------------------------------------------------------------------ 6. bounded messages


def test_messages_list_a_few_columns_then_how_many_more(tmp_path):
    names = [f"name_{i}" for i in range(20_000)]
    path = write(tmp_path, ",".join(names) + "\n" + ",".join("x" * 20_000) + "\n")
    with pytest.raises(UsageError, match=r"'name_4' and 19995 more\)") as error:
        load_csv(path)
    one_line(error)
    ok = plain_csv(tmp_path)
    with pytest.raises(UsageError, match=r"and 2995 more not found") as error:
        load_csv(ok, value_columns=[f"c{i}" for i in range(3000)])
    one_line(error)
    long = write(tmp_path, "timestamp,value\n" + "y" * 100_000 + ",1\n2024-01-01,2\n", "long.csv")
    with pytest.raises(UsageError, match=r"unparsable timestamps at lines 2 \(e.g. 'yyy") as error:
        load_csv(long)
    one_line(error)


def test_label_messages_are_bounded(tmp_path):
    path = labels_file(tmp_path, {f"dir/f{i}.csv": [] for i in range(10_000)})
    with pytest.raises(UsageError, match=r"and 9997 more\)") as error:
        load_labels(path, TIMES, "s.csv")
    one_line(error)
    path = labels_file(tmp_path, [["x" * 10_000, "y"]])
    with pytest.raises(UsageError, match="unparsable time") as error:
        load_labels(path, TIMES, "s.csv")
    one_line(error)


# ------------------------------------------------------------------ 7. standard input


def test_dash_reads_standard_input(tmp_path, monkeypatch):
    text = plain_csv(tmp_path, ";", ",").read_text()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    series = load_csv("-")
    np.testing.assert_array_equal(series.values[:, 0], VALUES)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"timestamp,value\n")))
    with pytest.raises(UsageError, match=r"^<stdin>: the file has a header but no rows"):
        load_csv("-")


# ------------------------------------------------------------------ 8. values too large


def test_huge_values_are_refused_with_line_and_column(tmp_path):
    path = write(
        tmp_path,
        "timestamp,a,b\n"
        + "".join(f"{t},1,{i}\n" for i, t in enumerate(STAMPS[:3]))
        + f"{STAMPS[3]},2,3e200\n",
    )
    with pytest.raises(
        UsageError, match=r"value 3e\+200 at line 5 \(column 'b'\) is too large"
    ) as e:
        load_csv(path)
    one_line(e)
    assert load_csv(write(tmp_path, "v\n1e149\n-1e149\n", "ok.csv")).values.max() == 1e149


def test_as_values_refuses_huge_values():
    with pytest.raises(ValueError, match=r"X has a value too large to analyse at row 2, channel 1"):
        as_values(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 1e151]]))
    with pytest.raises(ValueError, match=r"row 0, channel 0 \(-2e\+160\)"):
        as_values(pd.Series([-2e160, 1.0]))


# ------------------------------------------------------------------ 10. declared dependencies


def test_every_imported_package_is_declared():
    import ast
    import re as _re
    import tomllib
    from importlib.metadata import packages_distributions
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    names = {
        _re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in declared
    }
    distributions = packages_distributions()
    imported = set()
    for path in (root / "src" / "h0").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = sorted(imported - set(sys.stdlib_module_names) - {"h0", "__future__"})
    undeclared = [
        m
        for m in third_party
        if not {d.lower().replace("_", "-") for d in distributions.get(m, [m])} & names
    ]
    assert undeclared == [], f"imported but not in pyproject.toml: {undeclared}"
