from .base import LossTerms, Model
from .cvae import CVAE
from .vae import VAE

__all__ = ["Model", "LossTerms", "VAE", "CVAE"]
