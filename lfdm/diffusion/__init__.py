"""Diffusion process, losses and samplers. They receive the network as a callable
``denoiser(x_t, t) -> eps`` (conditioning bound by the caller) and never import a model."""
