"""Loading weights into keras_csp models."""

from keras_csp.weights.loading import load_weights, load_weights_file

__all__ = ["load_weights", "load_weights_file"]
