from .aae import AAE
from .base import LossTerms, Model
from .conv_vae import ConvVAE
from .cvae import CVAE
from .vae import VAE
from .vrae import VRAE, HierarchicalVRAE, pad_sequences

__all__ = ["Model", "LossTerms", "VAE", "CVAE", "ConvVAE", "AAE", "VRAE", "HierarchicalVRAE", "pad_sequences"]
