"""Batch scoring, the pure parts: shard ranges, the column layout, and row conversion for every format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from model_api.batch.inputs import InputFormatError, Row, RowError, convert, count_rows, layout, read_rows
from model_api.batch.shards import shard_of
from model_api.signature import Signature, TensorSpec

IRIS = Signature(
    inputs=(TensorSpec("input", "FP32", (-1, 4)),),
    outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 3))),
)
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
TWO_INPUTS = Signature(
    inputs=(TensorSpec("age", "INT64", (-1, 1)), TensorSpec("smoker", "BOOL", (-1, 1))),
    outputs=(TensorSpec("risk", "FP64", (-1, 1)),),
)


@given(total=st.integers(0, 10_000), count=st.integers(1, 64))
def test_shards_cover_every_row_exactly_once(total: int, count: int) -> None:
    shards = [shard_of(i, count, total) for i in range(count)]
    covered = [row for shard in shards for row in range(shard.start, shard.stop)]
    assert covered == list(range(total))
    assert max(s.rows for s in shards) - min(s.rows for s in shards) <= 1


@pytest.mark.parametrize(
    ("index", "count", "message"),
    [(4, 4, "--shard-index must be in 0..3"), (-1, 2, "--shard-index"), (0, 0, "--shard-count")],
)
def test_shard_arguments_out_of_range_are_named(index: int, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shard_of(index, count, 100)


def test_file_names_are_zero_padded_to_five_digits() -> None:
    shard = shard_of(3, 16, 1600)
    expected = ("part-00003-of-00016.jsonl", "errors-00003-of-00016.jsonl", "_SUCCESS-00003")
    assert (shard.part_name, shard.errors_name, shard.marker_name) == expected


def test_single_input_takes_the_declared_features_in_order() -> None:
    (columns,) = layout(IRIS, FEATURES)
    assert (columns.spec.name, columns.columns, columns.row_shape) == ("input", FEATURES, (4,))


def test_single_input_without_features_gets_positional_names() -> None:
    (columns,) = layout(IRIS, ())
    assert columns.columns == ("input_0", "input_1", "input_2", "input_3")


def test_feature_count_must_match_the_input_width() -> None:
    with pytest.raises(InputFormatError, match="names 3 features, input 'input' takes 4"):
        layout(IRIS, FEATURES[:3])


def test_several_inputs_take_one_column_each_named_after_the_input() -> None:
    assert [c.columns for c in layout(TWO_INPUTS, ())] == [("age",), ("smoker",)]


def test_an_input_without_a_row_dimension_is_refused_by_name() -> None:
    fixed = Signature(inputs=(TensorSpec("x", "FP32", (1, 4)),), outputs=IRIS.outputs)
    with pytest.raises(InputFormatError, match="input 'x' has shape"):
        layout(fixed, ())


def _rows(path: Path, fmt: str, signature: Signature = IRIS, features=FEATURES, start=0, stop=100):
    """What the shard sees: rows read, converted in batches of 3, each good row's cells or an error."""
    columns = layout(signature, features)
    items = list(read_rows(path, fmt, columns, start, stop))
    read = [item for item in items if isinstance(item, Row)]
    seen = [item for item in items if isinstance(item, RowError)]
    for offset in range(0, len(read), 3):
        batch = convert(read[offset : offset + 3], columns)
        seen += batch.errors + [
            Row(row.row, tuple(list(map(_plain, c)) for c in row.cells)) for row in batch.rows
        ]
    return sorted(seen, key=lambda item: item.row)


def _plain(value):
    return float(value) if isinstance(value, str) else value


def test_csv_columns_are_mapped_by_name_whatever_their_order(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("petal_width,sepal_length,extra,petal_length,sepal_width\n0.2,5.1,x,1.4,3.5\n")
    assert _rows(path, "csv") == [Row(0, ([5.1, 3.5, 1.4, 0.2],))]


def test_csv_columns_are_mapped_by_position_when_the_names_differ(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n")
    assert _rows(path, "csv") == [Row(0, ([5.1, 3.5, 1.4, 0.2],))]


def test_csv_header_that_fits_neither_way_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputFormatError, match="lacks sepal_length"):
        _rows(path, "csv")


def test_bad_csv_rows_come_back_with_their_number_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("a,b,c,d\n1,2,3,4\n1,2,3\n1,two,3,4\n1,nan,3,4\n1,,3,4\n")
    expected = [
        Row(0, ([1.0, 2.0, 3.0, 4.0],)),
        RowError(1, "3 columns, the header has 4"),
        RowError(2, "column 'sepal_width': could not convert string to float: 'two'"),
        RowError(3, "column 'sepal_width': 'nan' is not a finite number"),
        RowError(4, "column 'sepal_width': empty value"),
    ]
    assert _rows(path, "csv") == expected


def test_a_range_reads_only_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("a,b,c,d\n" + "".join(f"{i},0,0,0\n" for i in range(10)))
    assert [row.row for row in _rows(path, "csv", start=3, stop=6)] == [3, 4, 5]


def test_jsonl_named_inputs_with_typed_cells(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"age": 40, "smoker": true}\n{"age": [51], "smoker": "0"}\n{"age": 1.5, "smoker": 1}\n'
        '{"age": 3}\nnot json\n{"age": [1, 2], "smoker": 1}\n'
    )
    rows = _rows(path, "jsonl", TWO_INPUTS, ())
    assert rows[:2] == [Row(0, ([40], [True])), Row(1, ([51], [False]))]
    reasons = {item.row: item.reason for item in rows[2:]}
    assert reasons[2] == "column 'age': 1.5 is not an integer"
    assert reasons[3] == "missing input 'smoker' (inputs: age, smoker)"
    assert reasons[4].startswith("not JSON")
    assert reasons[5] == "input 'age' has shape [2]; it needs [1] per row"


def test_parquet_columns_by_name(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is the batch extra")
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    table = pa.table({name: [float(i), float(i + 1)] for i, name in enumerate(reversed(FEATURES))})
    pq.write_table(table, path)
    assert _rows(path, "parquet") == [Row(0, ([3.0, 2.0, 1.0, 0.0],)), Row(1, ([4.0, 3.0, 2.0, 1.0],))]


def test_a_file_that_is_not_parquet_is_a_format_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="pyarrow is the batch extra")
    path = tmp_path / "in.parquet"
    path.write_text("a,b\n")
    with pytest.raises(InputFormatError, match="not a readable Parquet file"):
        _rows(path, "parquet")


def test_rows_become_one_array_per_input_shaped_by_the_signature() -> None:
    batch = convert([Row(0, ([40], [True])), Row(1, ([51], ["0"]))], layout(TWO_INPUTS, ()))
    assert {k: (v.dtype.name, v.shape, v.tolist()) for k, v in batch.arrays.items()} == {
        "age": ("int64", (2, 1), [[40], [51]]),
        "smoker": ("bool", (2, 1), [[True], [False]]),
    }


def test_float_batches_convert_at_once_and_only_bad_rows_are_set_aside() -> None:
    rows = [
        Row(0, (["5.1", "3.5", "1.4", "0.2"],)),
        Row(1, (["1", "inf", "3", "4"],)),
        Row(2, (["6", "3", "4.8", "1.8"],)),
    ]
    batch = convert(rows, layout(IRIS, FEATURES))
    assert [row.row for row in batch.rows] == [0, 2]
    assert batch.errors == [RowError(1, "column 'sepal_width': 'inf' is not a finite number")]
    assert (
        batch.arrays["input"].tolist()
        == np.array([[5.1, 3.5, 1.4, 0.2], [6, 3, 4.8, 1.8]], np.float32).tolist()
    )


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("a,b,c,d\n1,2,3,4\n5,6,7,8\n", "csv"),
        ("a,b,c,d\n1,2,3,4\n5,6,7,8", "csv"),  # no newline after the last record
        ('a,b,c,d\n"1\n2",2,3,4\n5,6,7,8\n', "csv"),  # a quoted field spanning two lines is one record
        ("a,b,c,d\r\n1,2,3,4\r\n5,6,7,8\r\n", "csv"),
        ("a,b,c,d\n1,2,3,4\n\n", "csv"),  # a blank line is a (bad) record, as csv.reader reads it
        ('{"x": 1}\n{"x": 2}\n', "jsonl"),
        ('{"x": 1}\n{"x": 2}', "jsonl"),
    ],
)
def test_row_count_agrees_with_the_reader(tmp_path: Path, text: str, fmt: str) -> None:
    path = tmp_path / f"in.{fmt}"
    path.write_bytes(text.encode())
    columns = (
        layout(IRIS, FEATURES)
        if fmt == "csv"
        else layout(Signature(inputs=(TensorSpec("x", "FP32", (-1, 1)),), outputs=IRIS.outputs), ())
    )
    assert count_rows(path, fmt) == len(list(read_rows(path, fmt, columns, 0, 10**9)))


def test_a_carriage_return_cut_at_a_chunk_end_still_counts_right(tmp_path: Path) -> None:
    """The byte counter reads 1 MiB chunks: a CRLF split between two of them is still one line end."""
    header = "a,b,c,d\r\n"
    filler = "1,2,3,4\r\n"
    text = header + filler * ((1 << 20) // len(filler))
    text = text[: (1 << 20) - 1] + "\r\n" + filler  # the first chunk ends exactly on the CR
    path = tmp_path / "in.csv"
    path.write_bytes(text.encode())
    assert count_rows(path, "csv") == len(list(read_rows(path, "csv", layout(IRIS, FEATURES), 0, 10**9)))
