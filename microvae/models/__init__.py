from .aae import AAE
from .base import LossTerms, Model
from .vae import VAE

__all__ = ["Model", "LossTerms", "VAE", "AAE"]
