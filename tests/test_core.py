"""The bottom layer: JSON sanitising, versions and the one box parser."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.core.boxes import parse_box, parse_roi
from engine.core.errors import UsageError
from engine.core.jsonsafe import json_bytes, jsonable
from engine.core.versions import UNINSTALLED, app_version, library_versions, package_version


def test_jsonable_makes_numpy_tuples_paths_and_non_finite_values_strict_json():
    obj = {
        "a": np.float32(0.5),
        "b": (1, np.int64(2)),
        "c": np.array([[1.0, np.nan]]),
        "d": [math.inf, -math.inf, 1.5],
        3: Path("x/y.png"),
        "e": np.bool_(True),
    }
    clean = jsonable(obj)
    assert clean == {"a": 0.5, "b": [1, 2], "c": [[1.0, None]], "d": [None, None, 1.5],
                     "3": "x/y.png", "e": True}
    assert json.loads(json_bytes(obj)) == clean
    assert json_bytes({"name": "Ünïcode"}).decode("utf-8").endswith("}\n")
    assert "Ünïcode" in json_bytes({"name": "Ünïcode"}).decode("utf-8")


def test_versions_come_from_package_metadata():
    assert package_version("numpy") == np.__version__
    assert package_version("no-such-distribution-xyz") == "not installed"
    assert package_version("no-such-distribution-xyz", "?") == "?"
    assert app_version() not in ("", "not installed") and isinstance(UNINSTALLED, str)
    versions = library_versions()
    assert versions["numpy"] == np.__version__ and "python" in versions


@pytest.mark.parametrize("text", ["1,2,30,40", "1 2 30 40", " 1; 2 ;30,40 "])
def test_box_parser_accepts_commas_spaces_and_semicolons(text):
    assert parse_box(text) == (1.0, 2.0, 30.0, 40.0)
    assert parse_roi(text) == (1, 2, 30, 40)


@pytest.mark.parametrize(
    ("text", "why"),
    [("1,2,3", "four numbers"), ("a b c d", "four numbers"), ("1,2,nan,4", "four numbers"),
     ("5,5,2,9", "x0 < x1"), ("-1,0,4,4", "0 <= x0"), ("0,4,4,4", "y0 < y1")],
)
def test_box_parser_refuses_bad_boxes_with_a_usage_error(text, why):
    with pytest.raises(UsageError, match=why):
        parse_box(text)
    with pytest.raises(UsageError, match="--roi"):
        parse_roi(text)


def test_roi_rounding_to_an_empty_box_is_refused():
    with pytest.raises(UsageError, match="whole pixels"):
        parse_roi("1.2,1,1.4,5")


def test_metrics_and_manifest_use_the_one_box_parser():
    from engine.audit import manifest
    from engine.metrics import localisation

    assert localisation.parse_roi is parse_roi
    assert manifest.parse_box("1 2 3 4") == parse_box("1 2 3 4")
    assert manifest.parse_box("   ") is None
