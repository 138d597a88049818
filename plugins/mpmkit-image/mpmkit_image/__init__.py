"""Image plugin for mpmkit.

Submodules (import them explicitly; nothing heavy is imported here):

- ``tetrominoes``: a seeded generator of Tetrominoes-like scenes with an
  on-disk cache, in the layout of DeepMind's ``multi_object_datasets`` file;
- ``tfrecord``: a dependency-free reader and writer of (GZIP) TFRecord files of
  ``tf.train.Example``, and a loader for the official Tetrominoes file;
- ``splits``: the seeded 80/10/10 train/validation/test split;
- ``metrics``: ARI and foreground ARI (FG-ARI) of segmentations;
- ``data``: images as datasets, pixels as observations (validation, collate);
- ``model``: encoders, decoders and the mixture / additive likelihoods of the object-centric MPM;
- ``family``: the ``tetrominoes`` family (build_data / build_model / evaluate, GMM baseline);
- ``figures``: Fig. 4- and Fig. 5-style figures.
"""

__version__ = "0.1.0"
