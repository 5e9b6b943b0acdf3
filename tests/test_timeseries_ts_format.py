"""The .ts reader (UCR / UEA / TSER archive format): values, padding, labels and targets against files written
here by hand, and one-paragraph errors naming file and line for malformed cases."""

import gzip

import numpy as np
import pytest

from cl_domains.core.errors import UserError
from cl_domains.timeseries.ts_format import read_ts

UNIVARIATE = """# a comment
@problemName Tiny
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true a b
@data
1,2,3,4:a
4,3,2,1:b
0,0.5,?,1:a
"""

MULTIVARIATE = """@problemName Multi
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true 1 2 3
@data
1,2,3:10,20,30:1
4,5:40,50:3
"""

TSER = """@problemName Reg
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@targetLabel true
@data
1,2,3:4,5,6:0.5
7,8,9:1,1,1:-2.25
"""


def write(tmp_path, text, name="x_TRAIN.ts"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_univariate_classification(tmp_path):
    X, y, meta = read_ts(write(tmp_path, UNIVARIATE))
    assert X.shape == (3, 4, 1) and X.dtype == np.float64
    assert X[0, :, 0].tolist() == [1, 2, 3, 4] and X[1, :, 0].tolist() == [4, 3, 2, 1]
    assert np.isnan(X[2, 2, 0]) and X[2, 3, 0] == 1  # '?' is a missing value, not padding
    assert y.tolist() == ["a", "b", "a"]
    assert meta["task"] == "classify" and meta["class_labels"] == ["a", "b"] and meta["problem_name"] == "Tiny"
    assert meta["dimensions"] == 1 and meta["equal_length"] and meta["series_length"] == 4
    assert meta["lengths"].tolist() == [4, 4, 4]


def test_multivariate_unequal_length_is_nan_padded(tmp_path):
    X, y, meta = read_ts(write(tmp_path, MULTIVARIATE))
    assert X.shape == (2, 3, 2)
    assert X[0].tolist() == [[1, 10], [2, 20], [3, 30]]
    assert X[1, :2].tolist() == [[4, 40], [5, 50]] and np.isnan(X[1, 2]).all()
    assert y.tolist() == ["1", "3"] and meta["lengths"].tolist() == [3, 2] and not meta["equal_length"]


def test_tser_regression_targets_and_gzip(tmp_path):
    p = tmp_path / "reg_TEST.ts.gz"
    p.write_bytes(gzip.compress(TSER.encode()))
    X, y, meta = read_ts(p)
    assert X.shape == (2, 3, 2) and X[1].tolist() == [[7, 1], [8, 1], [9, 1]]
    assert y.dtype == np.float64 and y.tolist() == [0.5, -2.25] and meta["task"] == "regress"


def test_unlabelled_file(tmp_path):
    X, y, meta = read_ts(write(tmp_path, "@problemName U\n@univariate true\n@equalLength false\n@data\n1,2\n3\n"))
    assert y is None and meta["task"] is None and X.shape == (2, 2, 1) and np.isnan(X[1, 1, 0])


@pytest.mark.parametrize(
    "text,match",
    [
        (
            MULTIVARIATE.replace("4,5:40,50:3", "4,5:40,50,60:3"),
            r"line 10: the dimensions have different lengths \[2, 3\]",
        ),
        (MULTIVARIATE.replace("4,5:40,50:3", "4,5:3"), r"line 10: 1 dimension\(s\) but @dimensions has 2"),
        (UNIVARIATE.replace("4,3,2,1:b", "4,3,2:b"), r"line 11: series of length 3 but @seriesLength is 4"),
        (UNIVARIATE.replace("4,3,2,1:b", "4,3,2,1:c"), r"line 11: class label 'c' is not among @classLabel a b"),
        (UNIVARIATE.replace("4,3,2,1:b", "4,x,2,1:b"), r"line 11, dimension 1: non-numeric value"),
        (TSER.replace(":-2.25", ":high"), r"line 11: target 'high' is not a number"),
        (UNIVARIATE.replace("@timeStamps false", "@timeStamps true"), r"line 3: @timeStamps true"),
        (UNIVARIATE.replace("@data\n", ""), r"expected a header line"),
        (UNIVARIATE.split("@data")[0], r"no '@data' line"),
    ],
)
def test_malformed_cases_name_file_and_line(tmp_path, text, match):
    p = write(tmp_path, text)
    with pytest.raises(UserError, match=match) as err:
        read_ts(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_ragged_dimension_message_says_how_to_fix(tmp_path):
    p = write(tmp_path, TSER.replace("7,8,9:1,1,1", "7,8,9:1,1"))
    with pytest.raises(UserError) as err:
        read_ts(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}, line 11:") and "same number of values" in msg and "'?'" in msg


def test_infinite_and_binary_input(tmp_path):
    with pytest.raises(UserError, match=r"line 11, dimension 1: infinite value at step 2"):
        read_ts(write(tmp_path, UNIVARIATE.replace("4,3,2,1:b", "4,inf,2,1:b")))
    p = tmp_path / "bin.ts.gz"
    p.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(UserError, match="cannot be read as a text .ts file"):
        read_ts(p)


def test_mutated_files_give_a_result_or_a_user_error(tmp_path):
    """300 random edits of valid files (characters dropped, inserted, lines swapped or cut): read_ts returns
    consistent arrays or raises UserError, never another exception."""
    rng = np.random.default_rng(0)
    texts = [UNIVARIATE, MULTIVARIATE, TSER]
    outcomes = {"ok": 0, "error": 0}
    for n in range(300):
        text = list(texts[n % 3])
        for _ in range(rng.integers(1, 4)):
            op, i = rng.integers(0, 4), int(rng.integers(0, len(text)))
            if op == 0:
                del text[i]
            elif op == 1:
                text.insert(i, str(rng.choice(list(":,?x@\n 9-."))))
            elif op == 2:
                lines = "".join(text).split("\n")
                a, b = rng.integers(0, len(lines), 2)
                lines[a], lines[b] = lines[b], lines[a]
                text = list("\n".join(lines))
            else:
                text = text[:i]
        p = write(tmp_path, "".join(text), f"m{n}.ts")
        try:
            X, y, meta = read_ts(p)
        except UserError as err:
            assert str(p) in str(err)
            outcomes["error"] += 1
            continue
        assert X.ndim == 3 and len(X) == len(meta["lengths"]) and (y is None or len(y) == len(X))
        outcomes["ok"] += 1
    assert outcomes["ok"] > 20 and outcomes["error"] > 20
