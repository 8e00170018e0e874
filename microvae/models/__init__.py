from .aae import AAE
from .base import LossTerms, Model
from .vae import VAE
from .vrae import VRAE, HierarchicalVRAE

__all__ = ["Model", "LossTerms", "VAE", "AAE", "VRAE", "HierarchicalVRAE"]
