"""Training: the network builder, the two training loops (Keras fit, compiled JAX epochs), Hyperband."""
