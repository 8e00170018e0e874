"""Layers: each owns its forward and its hand-written backward."""

from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Layer
from .conv import Conv2D
from .conv_transpose import Conv2DTranspose
from .dense import Dense
from .pooling import MaxPool2D
from .recurrent import GRU, RNN
from .reshape import Flatten, Reshape
from .sequential import Sequential

__all__ = ["Layer", "Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Sequential",
           "Conv2D", "Conv2DTranspose", "MaxPool2D", "Flatten", "Reshape", "RNN", "GRU"]
