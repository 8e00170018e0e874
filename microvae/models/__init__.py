from .base import LossTerms, Model
from .conv_vae import ConvVAE
from .cvae import CVAE
from .vae import VAE

__all__ = ["Model", "LossTerms", "VAE", "CVAE", "ConvVAE"]
