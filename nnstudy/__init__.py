"""nnstudy: the classic MLP design study on MNIST as a reproducible DVC pipeline."""

import os

# TensorFlow's C++ log (CPU features, oneDNN, a spurious tf.data "error") buries each stage's summary;
# Python exceptions still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
