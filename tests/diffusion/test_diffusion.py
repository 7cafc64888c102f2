import json
import os

import pytest
import torch

from lfdm.config import DiffusionConfig
from lfdm.diffusion.guidance import guided
from lfdm.diffusion.losses import diffusion_loss
from lfdm.diffusion.parameterisation import Prediction, eps_from_x0, q_sample, x0_from_eps
from lfdm.diffusion.samplers import PerVideoNoise, ddim, sample, trailing_timesteps
from lfdm.diffusion.schedule import cosine_schedule
from lfdm.diffusion.thresholding import dynamic_threshold

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "official_keys")


def test_schedule_buffers_equal_official_values():
    with open(os.path.join(FIXTURES, "deterministic_buffers.json")) as f:
        ref = json.load(f)["diffusion_buffers_timesteps1000"]
    ours = cosine_schedule(DiffusionConfig()).official_buffers()
    assert set(ours) == set(ref)
    for name, values in ref.items():
        torch.testing.assert_close(ours[name], torch.tensor(values, dtype=torch.float32), rtol=1e-6, atol=1e-7,
                                   msg=name)


def test_schedule_closed_form():
    s = cosine_schedule(DiffusionConfig(timesteps=10))
    f = lambda t: torch.cos(torch.tensor(((t / 10) + 0.008) / 1.008 * torch.pi / 2, dtype=torch.float64)) ** 2  # noqa
    torch.testing.assert_close(s.alphas_cumprod[3], f(4) / f(0))
    assert float(s.abar(torch.tensor([-1]))) == 1.0
    assert s.betas.max() <= 0.9999


def test_parameterisation_roundtrip():
    x0, eps = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    abar = torch.tensor([0.9, 0.5, 0.01], dtype=torch.float64)
    x_t = q_sample(x0, abar, eps)
    torch.testing.assert_close(x0_from_eps(x_t, abar, eps), x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eps_from_x0(x_t, abar, x0), eps, atol=1e-5, rtol=1e-5)


def test_dynamic_threshold():
    x = torch.tensor([[0.5, -0.2, 0.1, 0.3]])
    assert torch.equal(dynamic_threshold(x), x)                    # within [-1, 1]: unchanged
    big = torch.linspace(-3, 3, 101).view(1, -1)
    s = torch.quantile(big.abs(), 0.9)
    torch.testing.assert_close(dynamic_threshold(big), big.clamp(-s, s) / s)


def test_trailing_timesteps_start_at_t_minus_one():
    assert trailing_timesteps(1000, 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert trailing_timesteps(1000, 1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError):
        trailing_timesteps(1000, 0)


def oracle(x0_true, schedule):
    def denoiser(x, t):
        return eps_from_x0(x, schedule.abar(t), x0_true.expand_as(x))
    return denoiser


@pytest.mark.parametrize("name,steps", [("ddpm", 1000), ("ddim", 10), ("ddim", 25), ("dpmpp", 10), ("dpmpp", 20)])
def test_samplers_recover_x0_from_an_oracle(name, steps):
    schedule = cosine_schedule(DiffusionConfig())
    x0 = torch.rand(2, 3, 4, 5, 5) * 1.6 - 0.8
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    noise = PerVideoNoise(gens, x0.shape[1:], "cpu")
    out = sample(name, oracle(x0, schedule), schedule, noise(), noise, steps=steps, eta=1.0 if name == "ddim" else 0)
    torch.testing.assert_close(out, x0, atol=2e-4, rtol=0)


def test_ddim_with_eta_and_without_thresholding():
    schedule = cosine_schedule(DiffusionConfig())
    x0 = torch.randn(1, 3, 2, 2, 2) * 2
    noise = PerVideoNoise([torch.Generator().manual_seed(0)], x0.shape[1:], "cpu")
    out = ddim(oracle(x0, schedule), schedule, noise(), noise, steps=50, eta=0.5, threshold=None)
    torch.testing.assert_close(out, x0, atol=2e-4, rtol=0)


def test_guidance_scale_one_is_conditional_and_zero_unconditional():
    calls = []

    def model(x, t, use_null):
        calls.append(use_null.clone())
        return torch.where(use_null.view(-1, 1), -x, 2 * x)        # null -> -x, conditional -> 2x
    x, t = torch.ones(3, 1), torch.zeros(3, dtype=torch.long)
    assert torch.equal(guided(model, 1.0)(x, t), 2 * x) and len(calls) == 1
    assert torch.equal(guided(model, 0.0)(x, t), -x)
    torch.testing.assert_close(guided(model, 1.5)(x, t), -x + 1.5 * (2 * x + x))
    assert calls[-1].tolist() == [False] * 3 + [True] * 3          # one doubled batch
    forced = torch.tensor([True, False, False])
    assert torch.equal(guided(model, 1.0, forced)(x, t)[:, 0], torch.tensor([-1.0, 2.0, 2.0]))


def test_guidance_interval_guides_only_the_noisier_steps():
    calls = []

    def model(x, t, use_null):
        calls.append(x.shape[0])
        return torch.where(use_null.view(-1, 1), -x, 2 * x)        # null -> -x, conditional -> 2x
    x = torch.ones(3, 1)
    denoiser = guided(model, 3.0, from_t=600)
    assert torch.equal(denoiser(x, torch.full((3,), 600)), torch.full((3, 1), -1.0 + 3 * 3))   # at from_t: guided
    assert torch.equal(denoiser(x, torch.full((3,), 599)), 2 * x) and calls[-1] == 3           # below: one forward
    mixed = denoiser(x, torch.tensor([999, 10, 600]))[:, 0]
    assert mixed.tolist() == [8.0, 2.0, 8.0]
    assert torch.equal(guided(model, 3.0)(x, torch.zeros(3, dtype=torch.long)), guided(model, 3.0, from_t=0)(
        x, torch.zeros(3, dtype=torch.long)))                      # from_t 0: every step guided, as before


def test_per_video_noise_is_independent_of_the_batch():
    shape = (3, 4)
    alone = PerVideoNoise([torch.Generator().manual_seed(7)], shape, "cpu")
    batch = PerVideoNoise([torch.Generator().manual_seed(1), torch.Generator().manual_seed(7)], shape, "cpu")
    a, b = [alone(i) for i in range(3)], [batch(i) for i in range(3)]
    assert all(torch.equal(x[0], y[1]) for x, y in zip(a, b))


def test_eps_mse_loss_is_zero_for_an_oracle():
    schedule = cosine_schedule(DiffusionConfig())
    x0 = torch.randn(4, 3, 2, 2, 2)
    gen = torch.Generator().manual_seed(0)
    loss = diffusion_loss(lambda x_t, t: eps_from_x0(x_t, schedule.abar(t), x0), x0, Prediction("eps", schedule),
                          generator=gen)
    assert loss < 1e-6


def test_x0_prediction_through_as_eps_recovers_x0_and_has_zero_loss_for_an_oracle():
    schedule = cosine_schedule(DiffusionConfig())
    x0 = torch.rand(2, 3, 4, 5, 5) * 1.6 - 0.8
    network = lambda x_t, t: x0.expand_as(x_t)                       # noqa: E731  an oracle predicting x0
    noise = PerVideoNoise([torch.Generator().manual_seed(i) for i in range(2)], x0.shape[1:], "cpu")
    out = sample("dpmpp", Prediction("x0", schedule).eps_denoiser(network), schedule, noise(), noise, steps=10)
    torch.testing.assert_close(out, x0, atol=2e-4, rtol=0)
    loss = diffusion_loss(network, x0, Prediction("x0", schedule), generator=torch.Generator().manual_seed(0))
    assert loss < 1e-10
    with pytest.raises(ValueError, match="unknown prediction"):
        Prediction("v", schedule)


def test_min_snr_weighting_keeps_the_oracle_minimum_and_downweights_easy_steps():
    schedule = cosine_schedule(DiffusionConfig())
    x0 = torch.randn(8, 3, 2, 2, 2)
    oracle_eps = lambda x_t, t: eps_from_x0(x_t, schedule.abar(t), x0)  # noqa: E731
    gen = lambda: torch.Generator().manual_seed(3)                      # noqa: E731
    eps = Prediction("eps", schedule)
    assert diffusion_loss(oracle_eps, x0, eps, gen(), min_snr_gamma=5.0) < 1e-6
    zero = lambda x_t, t: torch.zeros_like(x_t)                         # noqa: E731  error 1 per element
    uniform = diffusion_loss(zero, x0, eps, gen())
    weighted = diffusion_loss(zero, x0, eps, gen(), min_snr_gamma=5.0)
    assert weighted < uniform                                           # weights min(SNR, 5)/SNR <= 1
