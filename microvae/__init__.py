"""microvae: a Variational Autoencoder engine with every gradient written by hand.

Quick tour::

    import numpy as np
    import microvae
    rng = np.random.default_rng(0)
    x_batch = rng.random((64, 784))                        # 64 "images" in [0, 1]; real ones: see below
    model = microvae.VAE(input_dim=784, latent_dim=2)      # textbook MLP VAE
    terms = model.loss_and_grads(x_batch)                  # loss, recon, kl; grads in model.flat.grad
    x_small = rng.random((4, 16))                          # a small VAE's data, for a float64 gradient check
    print(microvae.check_model(microvae.VAE(16, (8,), 2, dtype="float64"), x_small))

Fashion-MNIST (read from Debian's dataset-fashion-mnist where installed, else downloaded once and cached)::

    from microvae.datasets import load_fashion_mnist
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()   # (60000, 784) in [0, 1]
    x_batch = x_train[:64]
"""

__version__ = "0.1.0"

from . import layers, losses
from .checkpoint import CheckpointError, load
from .backend import Backend, BackendUnavailable, get_backend
from .layers import GRU, RNN, Conv2D, Conv2DTranspose, Dense, Flatten, LeakyReLU, MaxPool2D, ReLU, Reshape, Sequential, Sigmoid, Tanh
from .likelihoods import Bernoulli, Gaussian
from .models import AAE, CVAE, VAE, VRAE, ConvVAE, HierarchicalVRAE, LossTerms, pad_sequences
from .optim import SGD, Adam, clip_grad_norm
from .params import FlatParameters
from .reparam import Reparameterization
from .training import Callback, EarlyStopping, History, ModelCheckpoint, TrainingDiverged
from .verify import GradcheckResult, check_layer, check_loss, check_model, gradcheck

__all__ = [
    "Backend", "BackendUnavailable", "get_backend",
    "layers", "losses",
    "Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Sequential", "RNN", "GRU",
    "Conv2D", "Conv2DTranspose", "MaxPool2D", "Flatten", "Reshape",
    "Bernoulli", "Gaussian", "VAE", "CVAE", "ConvVAE", "AAE", "VRAE", "HierarchicalVRAE", "LossTerms", "pad_sequences",
    "SGD", "Adam", "clip_grad_norm", "FlatParameters", "Reparameterization",
    "load", "CheckpointError", "History", "Callback", "ModelCheckpoint", "EarlyStopping", "TrainingDiverged",
    "GradcheckResult", "gradcheck", "check_layer", "check_loss", "check_model",
]
