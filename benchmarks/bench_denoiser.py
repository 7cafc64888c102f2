"""Denoiser forward and sampling cost per video.

    python benchmarks/bench_denoiser.py --preset mug128 --mode forward                # CPU: plain vs optimised forward
    python benchmarks/bench_denoiser.py --preset mug128 --mode all --batches 1 10 64 \
        --dtypes fp32 bf16 --compile                                                   # GPU: the whole grid

plain     = z0 repeated over K and convolved with x_t at every frame and step (the official form), eager fp32
optimised = z0's share of the first convolution computed once per video (UNet3D.encode_condition)
"""
from __future__ import annotations

import argparse
import sys

import torch

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from harness import Case, device_arg, run_cases  # noqa: E402

from lfdm.device import bf16_autocast  # noqa: E402
from lfdm.diffusion.keyframes import keyframe_count  # noqa: E402
from lfdm.diffusion.samplers import PerVideoNoise, sample  # noqa: E402
from lfdm.diffusion.schedule import cosine_schedule  # noqa: E402
from lfdm.models.unet3d import UNet3D  # noqa: E402
from lfdm.presets import get_preset  # noqa: E402

SAMPLERS = {"ddpm-1000": ("ddpm", 1000), "ddim-10": ("ddim", 10), "ddim-25": ("ddim", 25),
            "dpmpp-10": ("dpmpp", 10), "dpmpp-20": ("dpmpp", 20)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="mug128")
    p.add_argument("--device")
    p.add_argument("--mode", choices=("forward", "sample", "all"), default="forward")
    p.add_argument("--batches", type=int, nargs="+", default=[1])
    p.add_argument("--dtypes", nargs="+", default=["fp32"])
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    p.add_argument("--frames", type=int, help="frames the denoiser sees (default: the preset's keyframes, "
                                              "diffusion.keyframe_stride)")
    p.add_argument("--compile", action="store_true", help="also torch.compile the denoiser (mode=max-autotune-no-cudagraphs"
                                                          " on CPU, reduce-overhead = CUDA graphs on GPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--name", default=None)
    args = p.parse_args()
    device = device_arg(args.device)
    cfg = get_preset(args.preset)
    k = args.frames or keyframe_count(cfg.data.num_frames, cfg.diffusion.keyframe_stride)
    size = cfg.data.image_size // 2 ** cfg.autoencoder.num_down_blocks
    unet = UNet3D(cfg.unet).to(device).eval()
    schedule = cosine_schedule(cfg.diffusion)
    compiled = None
    if args.compile:
        compiled = torch.compile(unet, mode="reduce-overhead" if device.type == "cuda" else "max-autotune-no-cudagraphs")
    cases = []
    for b in args.batches:
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(b, 3, k, size, size, device=device, generator=g)
        z0 = torch.randn(b, cfg.unet.latent_channels, size, size, device=device, generator=g)
        text = torch.randn(b, cfg.unet.text_dim, device=device, generator=g)
        t = torch.full((b,), 500, device=device)
        for dtype in args.dtypes:
            params = {"preset": cfg.name, "batch": b, "frames": k, "dtype": dtype}

            @torch.no_grad()
            def plain(x=x, z0=z0, text=text, t=t, dtype=dtype):
                with bf16_autocast(device, dtype == "bf16"):
                    return unet.forward_concat(x, t, text=text, z0=z0)

            @torch.no_grad()
            def optimised(x=x, z0=z0, text=text, t=t, dtype=dtype, net=unet):
                with bf16_autocast(device, dtype == "bf16"):
                    return net(x, t, text=text, z0_features=unet.encode_condition(z0))
            if args.mode in ("forward", "all"):
                cases.append(Case("forward plain (z0 per frame and step)", plain, b, params={**params, "compiled": False}))
                cases.append(Case("forward optimised (z0 once per video)", optimised, b, params={**params, "compiled": False}))
                if compiled is not None:
                    cases.append(Case("forward optimised + compile", lambda **kw: optimised(net=compiled), b,
                                      params={**params, "compiled": True}))
            if args.mode in ("sample", "all"):
                for key in args.samplers:
                    name, steps = SAMPLERS[key]
                    for net, tag in ((unet, False), (compiled, True)):
                        if net is None:
                            continue

                        @torch.no_grad()
                        def run(name=name, steps=steps, net=net, z0=z0, text=text, b=b, dtype=dtype):
                            zf = unet.encode_condition(z0)
                            gens = [torch.Generator(device=device).manual_seed(i) for i in range(b)]
                            noise = PerVideoNoise(gens, (3, k, size, size), device)
                            with bf16_autocast(device, dtype == "bf16"):
                                return sample(name, lambda xx, tt: net(xx, tt, text=text, z0_features=zf), schedule,
                                              noise(), noise, steps=steps)
                        cases.append(Case(f"sample {key}", run, b, params={**params, "compiled": tag}))
    run_cases(args.name or f"denoiser_{args.preset}_{device.type}", cases, device, repeats=args.repeats,
              command="python benchmarks/bench_denoiser.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
