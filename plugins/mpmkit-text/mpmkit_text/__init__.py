"""mpmkit text plugin: documents are datasets, words are observations.

Modules (import them directly; this package imports nothing heavy):

- :mod:`mpmkit_text.ap` -- AP corpus (lda-c format) reader, download and splits.
- :mod:`mpmkit_text.words` -- the word tokenisation shared by all modules.
- :mod:`mpmkit_text.encoder` -- frozen transformer word embeddings (mean of sub-words).
- :mod:`mpmkit_text.cache` -- on-disk cache of those embeddings.
- :mod:`mpmkit_text.coherence` -- UMass / NPMI topic coherence and tf-idf topic words.
- :mod:`mpmkit_text.vocab` -- the observation vocabulary (stop words, min count, unknown words).
- :mod:`mpmkit_text.model` -- the topic MPM (recognition MLP, softmax likelihood, online-EM GMM prior).
- :mod:`mpmkit_text.topics` -- topics by the paper's rule, shared scoring, the LDA baseline.
- :mod:`mpmkit_text.family` -- the ``ap-topics`` family (``mpmkit fit ap-topics --out RUN``).
"""

__version__ = "0.1.0"
