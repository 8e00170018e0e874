"""microvae: a Variational Autoencoder engine with hand-written gradients."""

__version__ = "0.1.0"
