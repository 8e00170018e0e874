"""Layers: each owns its forward and its hand-written backward."""

from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Layer
from .dense import Dense
from .recurrent import GRU, RNN
from .sequential import Sequential

__all__ = ["Layer", "Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Sequential", "RNN", "GRU"]
