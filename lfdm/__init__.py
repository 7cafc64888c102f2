"""LFDM: conditional image-to-video generation with latent flow diffusion models (CVPR 2023).

The library is pure PyTorch; it never imports ray, fastapi or the serve package.
"""
__version__ = "0.1.0"
