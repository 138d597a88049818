"""mpmkit plugin entry point for the text (topic) plugin.

Registers the ``ap-topics`` family (the topic MPM of Sec. 3.2), the AP corpus as a dataset and
UMass / NPMI topic coherence as metrics. Heavy imports (transformers) happen only when a component is used.
"""
from __future__ import annotations

from mpmkit import hookimpl


def _ap():
    from mpmkit import DatasetSource

    from .ap import AP_FILE_SHA256, AP_SHA256, AP_URL, fetch_ap, find_ap, read_ap

    return DatasetSource(load=read_ap, locate=find_ap, fetch=fetch_ap, url=AP_URL, sha256=AP_SHA256, files=AP_FILE_SHA256,
                         description="AP news corpus (lda-c's ap.tgz), 2,246 articles")


def _coherence(measure):
    def metric(topics, documents, **kw):
        """Mean coherence of ``topics`` (word lists, or a mapping cluster -> word list) on reference
        ``documents``; topics with fewer than two words in the reference are skipped."""
        import numpy as np

        from .coherence import coherence

        scores = coherence(topics, documents, measure, **kw)
        scores = np.asarray(list(scores.values()) if isinstance(scores, dict) else scores, np.float64)
        return float(np.nanmean(scores))

    metric.__name__ = measure
    return metric


@hookimpl
def register_families(register):
    from .family import APTopicsFamily

    register(APTopicsFamily.name, APTopicsFamily)


@hookimpl
def register_datasets(register):
    register("ap", _ap())


@hookimpl
def register_metrics(register):
    register("umass", _coherence("umass"))
    register("npmi", _coherence("npmi"))
