"""The models: VAE (and β-VAE by its options), CVAE, ConvVAE, AAE, VRAE and HierarchicalVRAE.

Each VAE owns its objective and the backward pass through it (``loss_and_grads``); the AAE
trains in three phases instead (``phase_loss``)."""

from .aae import AAE
from .base import LossTerms, Model
from .conv_vae import ConvVAE
from .cvae import CVAE
from .vae import VAE
from .vrae import VRAE, HierarchicalVRAE, pad_sequences

__all__ = ["Model", "LossTerms", "VAE", "CVAE", "ConvVAE", "AAE", "VRAE", "HierarchicalVRAE", "pad_sequences"]
