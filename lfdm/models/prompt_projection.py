"""A free-text prompt's condition read as a noisy training condition, and replaced by its posterior mean.

With ``text.condition_noise`` stage 2 trains on every training sentence's condition plus Gaussian noise of
standard deviation sigma, so the conditions it has seen are distributed as

    p(c) = 1/P sum_p N(c; s_p, sigma^2 I)        (s_p: the P training sentences' conditions)

A prompt worded unlike any of them lands where that density is thin, often nearer the null condition than any
class, and the model animates it weakly or not at all (held-out prompts in the demo came out still). Reading the
prompt's condition x as a draw from p and taking the posterior mean (Tweedie / the Bayes-optimal denoiser of
this mixture)

    E[s | x] = sum_p w_p s_p,   w = softmax_p(-|x - s_p|^2 / (2 sigma^2))

moves it onto the conditions the model knows, by how far the training noise says it may have strayed: a prompt
within a few sigma of one class's sentences becomes that class's condition, one equally near two classes a
blend. It uses no new hyperparameter: sigma is the training noise. ``sample.prompt_projection`` turns it on; it
never touches labels. Any text maps somewhere among the training motions: a prompt naming a motion the model
was never trained on is not refused, it is animated as the motion nearest to it.
"""
from __future__ import annotations

import torch


def sentence_posterior(conditions: torch.Tensor, sentences: torch.Tensor, sigma: float) -> torch.Tensor:
    """w: (B, P) float64, the posterior weight of each training sentence (P, D) given each condition (B, D)."""
    if sigma <= 0:
        raise ValueError(f"prompt projection needs the training condition noise's sigma > 0, got {sigma}")
    x, s = conditions.double(), sentences.double().to(conditions.device)
    return (-torch.cdist(x, s) ** 2 / (2 * sigma ** 2)).softmax(dim=1)


def project_prompts(conditions: torch.Tensor, sentences: torch.Tensor, sigma: float) -> torch.Tensor:
    """conditions (B, D) of prompts -> (B, D) posterior means E[s | x] over sentences (P, D), in x's dtype."""
    weights = sentence_posterior(conditions, sentences, sigma)                       # (B, P)
    return (weights @ sentences.double().to(conditions.device)).to(conditions.dtype)
