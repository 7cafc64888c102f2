
import numpy as np
import pytest
import torch
from PIL import Image

from lfdm.cli import main as cli
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.text import embed_labels, whiten_label_embeddings
from lfdm.models.unet3d import UNet3D
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from lfdm.presets import get_preset
from lfdm import checkpoint as ckpt

LABELS = ["move left", "zoom in", "stay still"]


@pytest.fixture(scope="module")
def tiny_pipeline():
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    return ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), LABELS,
                                torch.randn(len(LABELS), cfg.unet.text_dim))


def test_video_alone_or_in_a_batch_gets_identical_noise_and_result(tiny_pipeline):
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    batch = tiny_pipeline(images, ["move left", "zoom in", None], seeds=[11, 12, 13],
                          sampler="ddim", steps=3, eta=1.0)
    alone = tiny_pipeline(images[1:2], ["zoom in"], seeds=[12], sampler="ddim", steps=3, eta=1.0)
    assert batch.frames.shape == (3, 3, 10, 32, 32) and batch.flows.shape == (3, 10, 8, 8, 2)
    assert batch.occlusions.shape == (3, 1, 10, 8, 8)
    torch.testing.assert_close(alone.frames[0], batch.frames[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(alone.flows[0], batch.flows[1], atol=1e-4, rtol=0)
    other = tiny_pipeline(images[1:2], ["zoom in"], seeds=[99], sampler="ddim", steps=3)
    assert not torch.allclose(other.flows, alone.flows)


def test_batched_decoding_equals_per_frame_decoding(tiny_pipeline):
    images = torch.rand(2, 3, 32, 32)
    out = tiny_pipeline(images, ["move left", "stay still"], seeds=[1, 2], sampler="dpmpp", steps=2)
    lfae = tiny_pipeline.lfae
    for b in range(2):
        for k in (0, 7):
            with torch.no_grad():
                frame = lfae.decode(lfae.encode(images[b:b + 1]), images[b:b + 1], out.flows[b, k:k + 1],
                                    out.occlusions[b:b + 1, :, k])
            torch.testing.assert_close(frame[0], out.frames[b, :, k], atol=1e-5, rtol=0)


def test_bf16_denoiser_gives_the_same_video_within_tolerance(tiny_pipeline):
    """sample.bf16: only the denoiser runs in bf16. Tolerance (random tiny model, 4 DPM-Solver++ steps): flows
    differ by < 0.01 on average and < 0.1 anywhere (grid units of [-1, 1]; measured 0.006 / 0.05); frames, which
    turn a sub-pixel shift at a sharp edge into a large local difference, by < 0.03 on average (measured 0.016)."""
    import dataclasses
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    kwargs = dict(seeds=[1, 2], sampler="dpmpp", steps=4)
    reference = tiny_pipeline(images, ["move left", "zoom in"], **kwargs)
    cfg = tiny_pipeline.config
    fast_pipe = ImageToVideoPipeline(dataclasses.replace(cfg, sample=dataclasses.replace(cfg.sample, bf16=True)),
                                     tiny_pipeline.lfae, tiny_pipeline.unet, LABELS, tiny_pipeline.text_embeddings)
    fast = fast_pipe(images, ["move left", "zoom in"], **kwargs)
    assert fast.flows.dtype == torch.float32 and fast.frames.dtype == torch.float32
    flow_error = (fast.flows - reference.flows).abs()
    assert float(flow_error.mean()) < 0.01 and float(flow_error.max()) < 0.1
    assert float((fast.frames - reference.frames).abs().mean()) < 0.03


def test_unknown_label_lists_accepted(tiny_pipeline):
    with pytest.raises(KeyError, match="accepts: 'move left', 'zoom in', 'stay still'"):
        tiny_pipeline(torch.rand(1, 3, 32, 32), ["fly away"], seeds=[0], sampler="ddim", steps=1)


def test_text_embedding_is_masked_mean_without_cls():
    emb = embed_labels(["zoom in", "rotate counterclockwise"], "minilm")
    assert emb.shape == (2, 384)
    from transformers import AutoModel, AutoTokenizer
    from lfdm.models.text import resolve_encoder
    path = resolve_encoder("minilm")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    ids = tok("zoom in", return_tensors="pt")
    with torch.no_grad():
        hidden = model(**ids).last_hidden_state[0]
    torch.testing.assert_close(emb[0], hidden[1:].mean(0), atol=1e-5, rtol=1e-5)


def test_whitened_label_embeddings_are_equidistant_with_the_raw_mean_norm():
    raw = torch.randn(5, 384, generator=torch.Generator().manual_seed(0)) + 3.0   # shared offset, like real ones
    white = whiten_label_embeddings(raw)
    n = raw.shape[0]
    gram = white.double() @ white.double().T
    expected = (torch.eye(n, dtype=torch.float64) - 1.0 / n) * gram.diagonal().mean() / (1 - 1.0 / n)
    torch.testing.assert_close(gram, expected, atol=1e-3, rtol=1e-4)               # all pairs equally distinct
    torch.testing.assert_close(white.norm(dim=1).mean(), raw.norm(dim=1).mean())
    torch.testing.assert_close(white.sum(0), torch.zeros(384), atol=1e-4, rtol=0)   # mean = the zero null embedding
    torch.testing.assert_close(whiten_label_embeddings(raw[:1]), raw[:1])           # one label: unchanged


def test_generate_cli_formats_and_errors(tmp_path, tiny_pipeline, capsys):
    cfg = tiny_pipeline.config
    uri = str(tmp_path / "model")
    tiny_pipeline.save(uri)
    image = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)).save(image)
    base = ["generate", "--checkpoint", uri, "--image", str(image), "--sampler", "ddim", "--steps", "2"]
    for name in ("v.mp4", "v.gif", "v.npz"):
        assert cli(base + ["--label", "zoom in", "--out", str(tmp_path / name)]) == 0
    assert cli(base + ["--label", "zoom in", "--strip", "--out", str(tmp_path / "strip.gif")]) == 0
    assert cli(base + ["--out", str(tmp_path / "stochastic.mp4")]) == 0            # no label: null condition
    arrays = np.load(tmp_path / "v.npz")
    assert arrays["frames"].shape == (10, 32, 32, 3) and arrays["flows"].shape == (10, 8, 8, 2)
    with Image.open(tmp_path / "strip.gif") as gif:
        assert gif.size == (4 * 32, 32) and gif.n_frames == 10
    assert cli(base + ["--label", "fly", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "accepts: 'move left'" in capsys.readouterr().err
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert cli(base[:4] + [str(tmp_path / "bad.png")] + base[5:] + ["--label", "zoom in", "--out",
                                                                    str(tmp_path / "y.mp4")]) == 2
    assert "not a readable image" in capsys.readouterr().err
    lfae_only = str(tmp_path / "lfae_only")
    ckpt.save_checkpoint(lfae_only, cfg, ckpt.with_prefix("lfae.", tiny_pipeline.lfae.state_dict()), kind="lfae")
    with pytest.raises(ckpt.CheckpointError, match="full model"):
        ImageToVideoPipeline.load(lfae_only)


@pytest.mark.parametrize("guidance_from", [0.0, 0.6])
def test_paper_stage2_path_equals_the_written_out_algorithm(guidance_from):
    """The paper's stage 2 end to end: eps-prediction, absolute flow grid, dynamic thresholding at the 0.9
    quantile, classifier-free guidance 1.5, DDPM ancestral sampling (here T = 50), then warp + decode. The
    pipeline must equal the algorithm written out below from the paper's equations (Eq. 4 guidance, DDPM
    posterior, Imagen thresholding), independently of the library's samplers and wrappers. With
    ``sample.guidance_from`` 0.6 the guidance applies at t >= 30 only, the conditional model alone below."""
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"diffusion.prediction": "eps", "diffusion.residual_flow": False,
                              "diffusion.dynamic_threshold_quantile": 0.9, "diffusion.timesteps": 50,
                              "sample.sampler": "ddpm", "sample.steps": 50, "sample.guidance": 1.5,
                              "sample.guidance_from": guidance_from})
    lfae, unet = LatentFlowAutoencoder(cfg.autoencoder).eval(), UNet3D(cfg.unet).eval()
    text = torch.randn(len(LABELS), cfg.unet.text_dim)
    pipe = ImageToVideoPipeline(cfg, lfae, unet, LABELS, text)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    out = pipe(image, ["zoom in"], seeds=[42])

    # the same, written out: cosine schedule (Nichol & Dhariwal Eq. 17) in float64
    T, s = 50, 0.008
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * torch.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.9999)
    abar = torch.cumprod(1 - betas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    gen = torch.Generator().manual_seed(42)
    x = torch.randn(1, 3, 10, 8, 8, generator=gen)
    with torch.no_grad():
        z0 = lfae.encode(image)[-1]
        for t in reversed(range(T)):
            tt = torch.full((2,), t, dtype=torch.long)
            eps = unet.forward_concat(torch.cat([x, x]), tt, text=text[[1, 1]], z0=torch.cat([z0, z0]),
                                      use_null=torch.tensor([False, True]))
            scale = 1.5 if t >= guidance_from * T else 1.0
            eps = eps[1:] + scale * (eps[:1] - eps[1:])                                 # guidance, paper Eq. 4
            x0 = (x - (1 - abar[t]).sqrt().float() * eps) / abar[t].sqrt().float()
            q = torch.quantile(x0.abs().flatten(), 0.9).clamp(min=1.0)                  # dynamic thresholding
            x0 = x0.clamp(-q, q) / q
            c1 = (betas[t] * abar_prev[t].sqrt() / (1 - abar[t])).float()
            c2 = ((1 - abar_prev[t]) * (1 - betas[t]).sqrt() / (1 - abar[t])).float()
            x = c1 * x0 + c2 * x
            if t > 0:
                var = (betas[t] * (1 - abar_prev[t]) / (1 - abar[t])).clamp(min=1e-20)
                x = x + (0.5 * var.log()).exp().float() * torch.randn(x.shape, generator=gen)
        flows = x[:, :2].permute(0, 2, 3, 4, 1)[0]                                      # absolute grid (K, h, w, 2)
        occlusions = (x[:, 2:3] + 1) / 2                                                 # (1, 1, K, h, w)
        frames = torch.stack([lfae.decode(lfae.encode(image), image, flows[k:k + 1], occlusions[:, :, k])[0]
                              for k in range(10)], dim=1)
    torch.testing.assert_close(out.flows[0], flows, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.occlusions[0], occlusions[0].clamp(0, 1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.frames[0], frames, atol=1e-4, rtol=0)
    assert float((x[:, :2].abs()).max()) <= 1.0 + 1e-6               # thresholding kept the grid in [-1, 1]
    if guidance_from:                                   # the call's setting overrides the config's, as every sample.*
        import dataclasses
        plain = dataclasses.replace(cfg, sample=dataclasses.replace(cfg.sample, guidance_from=0.0))
        asked = ImageToVideoPipeline(plain, lfae, unet, LABELS, text)(image, ["zoom in"], seeds=[42],
                                                                      guidance_from=guidance_from)
        assert torch.equal(asked.flows, out.flows)
