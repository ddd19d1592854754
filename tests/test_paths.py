"""lib.results.upsert_csv: the CSV upsert every results table uses (atomic_write: test_config.py)."""
from __future__ import annotations

import pandas as pd
import pytest

from lib.errors import ConfigError
from lib.results import upsert_csv


def _table(model: str, dataset: str, value: float) -> pd.DataFrame:
    return pd.DataFrame({"model": [model] * 2, "dataset": [dataset] * 2, "name": ["a", "b"], "value": [value] * 2})


def test_upsert_replaces_rows_of_the_same_key_and_keeps_the_rest(tmp_path):
    path = tmp_path / "t.csv"
    upsert_csv(path, pd.concat([_table("m1", "d", 1.0), _table("m2", "d", 2.0), _table("m1", "e", 3.0)]),
               keys=["model", "dataset"])
    merged = upsert_csv(path, _table("m1", "d", 9.0), keys=["model", "dataset"], sort_by=["model", "dataset"])
    on_disk = pd.read_csv(path)
    pd.testing.assert_frame_equal(on_disk, merged.reset_index(drop=True))
    values = on_disk.groupby(["model", "dataset"])["value"].agg(["first", "size"])
    assert values.to_dict("index") == {("m1", "d"): {"first": 9.0, "size": 2}, ("m1", "e"): {"first": 3.0, "size": 2},
                                       ("m2", "d"): {"first": 2.0, "size": 2}}
    # one key column: every row of the model goes
    assert set(upsert_csv(path, _table("m1", "z", 5.0), keys=["model"])["dataset"]) == {"d", "z"}


def test_upsert_rejects_a_file_with_other_columns_and_leaves_it(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("model,other\nm1,1\n")
    with pytest.raises(ConfigError, match="t.csv.*columns"):
        upsert_csv(path, _table("m1", "d", 1.0), keys=["model"])
    assert path.read_text() == "model,other\nm1,1\n"

