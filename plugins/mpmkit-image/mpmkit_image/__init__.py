"""Image plugin for mpmkit.

Submodules (import them explicitly; nothing heavy is imported here):

- ``tetrominoes``: a seeded generator of Tetrominoes-like scenes with an
  on-disk cache, in the layout of DeepMind's ``multi_object_datasets`` file;
- ``tfrecord``: a dependency-free reader and writer of (GZIP) TFRecord files of
  ``tf.train.Example``, and a loader for the official Tetrominoes file;
- ``splits``: the seeded 80/10/10 train/validation/test split;
- ``metrics``: ARI and foreground ARI (FG-ARI) of segmentations.
"""

__version__ = "0.1.0"
