"""The real mteb package (optional dependency, requirements-mteb.txt): metadata, mock tasks, and the
local MLQARetrieval evaluated through ``mteb.evaluate`` offline, against ``evaluate_mlqa_retrieval``.

Skipped, with the reason, when mteb is not installed.
"""
from __future__ import annotations

import importlib.util

import pytest

from lib import mteb_adapter as MA
from lib import mteb_eval as ME
from lib.backbones import load_encoder
from tiny_model import build_tiny_encoder

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.skipif(
    importlib.util.find_spec("mteb") is None,
    reason="mteb is not installed: it is an optional dependency (pip install -r requirements-mteb.txt); "
           "without it lib.mlqa_retrieval.evaluate_mlqa_retrieval is the only MLQARetrieval evaluation")]

# Items per language pair for the agreement test (lib.data.load_mlqa_retrieval(max_items=...)); the
# full-size check over all 15,747 questions is benchmarks/mteb_agreement.py.
AGREEMENT_ITEMS = 10
AGREEMENT_LAYERS = 1  # the embedded backbone cut to its first layer: untuned, fast



def test_model_meta_names_the_model_and_its_revision(tiny_encoder):
    import mteb
    from mteb.models import ModelMeta

    wrapper = MA.MtebEncoder(tiny_encoder, name="hybrid a0.5/s0")
    meta = wrapper.mteb_model_meta
    assert isinstance(meta, ModelMeta)
    assert meta.name == "hybrid-batch-study/hybrid_a0.5_s0" and meta.model_name_as_path() != "no_model_name__available"
    assert meta.revision == MA.model_revision(tiny_encoder) and len(meta.revision) == 12
    assert meta.embed_dim == tiny_encoder.dim and meta.similarity_fn_name == "cosine" and meta.use_instructions
    # the revision follows the weights, the layer count and the stored fingerprint of a trained run
    assert MA.model_revision(build_tiny_encoder(seed=1)) != meta.revision
    assert MA.model_revision(build_tiny_encoder(seed=0, layers=1)) != meta.revision
    tiny_encoder.info["weights_sha256"] = "ab" * 32
    assert MA.model_revision(tiny_encoder) != meta.revision
    assert mteb.__version__.startswith("2.")


def test_mock_run_passes_with_the_wrapper(tiny_encoder):
    import mteb

    result = mteb.mock_run(MA.MtebEncoder(tiny_encoder, max_length=32))
    ran = [name for name, status in result.items() if status is not None]
    failed = {name: str(status)[:200] for name, status in result.items()
              if status is not None and not hasattr(status, "scores")}
    assert result.model_name == f"hybrid-batch-study/{tiny_encoder.name}"
    assert not failed and result.all_passed and len(ran) >= 10, failed


@pytest.mark.real_model
@pytest.mark.real_data
def test_mteb_evaluate_agrees_with_the_local_mlqa_retrieval(tmp_path):
    """49 MLQA dev subsets (AGREEMENT_ITEMS items each), untuned backbone: nDCG@10 equal to mteb's 5 decimals."""
    encoder = load_encoder("embedded", num_layers=AGREEMENT_LAYERS)
    table = ME.mteb_agreement(encoder, max_items=AGREEMENT_ITEMS, max_length=128, out_dir=tmp_path)
    assert len(table) == 49 and table["n_queries"].min() > 0
    assert table.attrs["max_abs_diff"] <= 1e-6, table.nlargest(3, "abs_diff")
    assert table.attrs["max_raw_diff"] <= 5e-6 + 1e-9  # what mteb's rounding to 5 decimals leaves
    assert table["mteb"].std() > 0.01  # real, varied scores: not a degenerate all-0 / all-1 comparison
    # mteb's files are filed under the model's own name and revision, not no_model_name__available
    folder = tmp_path / "results" / f"hybrid-batch-study__{encoder.name}" / table.attrs["revision"]
    assert (folder / f"{ME.LOCAL_TASK}.json").is_file()
    assert not list((tmp_path / "results").glob("no_model_name*"))


def test_embedding_memo_serves_repeats_and_counts_new_texts(tiny_encoder, monkeypatch):
    """What mteb_agreement(reuse_embeddings=True) hands mteb: the local side's vectors, by role and text."""
    import numpy as np

    monkeypatch.setenv("HBT_BF16", "0")
    memo = MA.EmbeddingMemo(tiny_encoder)
    first = memo.encode(["a1 a2", "b1", "a1 a2"], "query", max_length=32)
    assert memo.misses == 2 and memo.dim == tiny_encoder.dim and memo.query_prefix == "query: "
    np.testing.assert_allclose(first, tiny_encoder.encode(["a1 a2", "b1", "a1 a2"], "query", max_length=32),
                               atol=1e-6)
    memo.misses = 0
    again = memo.encode(["b1", "a1 a2"], "query", max_length=32)
    assert memo.misses == 0 and np.array_equal(again, first[[1, 0]])
    passage = memo.encode(["b1"], "passage", max_length=32)  # another role is another text
    assert memo.misses == 1 and not np.allclose(passage, first[1])
    assert memo.encode([], "query").shape == (0, tiny_encoder.dim)
