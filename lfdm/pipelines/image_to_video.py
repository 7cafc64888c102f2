"""Image(s) + class label(s) or free-text prompt(s) -> videos, latent flows and occlusion maps (paper Sec. 3.3,
Fig. 2)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import torch

from lfdm import checkpoint as ckpt
from lfdm.data.phrasings import phrasings_for
from lfdm.device import bf16_autocast
from lfdm.config import ConfigError, LFDMConfig, with_overrides
from lfdm.diffusion.guidance import guided
from lfdm.diffusion.keyframes import interpolate_keyframes, keyframe_count
from lfdm.diffusion.parameterisation import Prediction
from lfdm.diffusion.samplers import PerVideoNoise, sample
from lfdm.diffusion.schedule import cosine_schedule
from lfdm.flow_target import target_to_flow
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.prompt_projection import project_prompts
from lfdm.models.text import PromptEncoder, condition_noise_std, embed_labels, label_index, run_conditions
from lfdm.models.text_map import TextMap
from lfdm.models.unet3d import UNet3D


SENTENCES, SENTENCE_CLASSES = "text.phrasing_embeddings", "text.phrasing_classes"


@dataclass
class GeneratedVideos:
    frames: torch.Tensor       # (B, 3, K, H, W) in [0, 1]
    flows: torch.Tensor        # (B, K, h, w, 2) backward sampling grids
    occlusions: torch.Tensor   # (B, 1, K, h, w) in [0, 1], 1 = visible


class ImageToVideoPipeline:
    def __init__(self, config: LFDMConfig, lfae: LatentFlowAutoencoder, unet: UNet3D, labels: Sequence[str],
                 text_embeddings: torch.Tensor, text_map: Optional[TextMap] = None,
                 sentences: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        """``sentences``: (conditions (P, D), class of each (P,)) of the training sentences, which
        ``sample.prompt_projection`` projects prompts onto (None: the labels when the run trained on them alone,
        else re-embedded from the config when first needed)."""
        if text_embeddings.shape != (len(labels), config.unet.text_dim):
            raise ValueError(f"text embeddings {tuple(text_embeddings.shape)} do not fit {len(labels)} labels "
                             f"x unet.text_dim={config.unet.text_dim}")
        self.config = config
        self.lfae = lfae.eval()
        self.unet = unet.eval()
        self.labels = list(labels)
        self.text_embeddings = text_embeddings
        self.text_map = text_map           # raw sentence embedding -> condition, fitted by the run (None: identity)
        self._prompt_encoder: Optional[PromptEncoder] = None
        self.sentences = sentences
        self.prediction = Prediction(config.diffusion.prediction, cosine_schedule(config.diffusion))
        self.checkpoint_hash = ""          # of the weights it was loaded from ("" when built in memory)

    @classmethod
    def load(cls, uri: str, device: str | torch.device = "cpu") -> "ImageToVideoPipeline":
        """A full generation checkpoint (kind "lfdm") as a pipeline on ``device``."""
        loaded = ckpt.read_checkpoint(uri)
        if loaded.kind != "lfdm":
            raise ckpt.CheckpointError(
                f"{uri} is a {loaded.kind!r} checkpoint; generation needs a full model "
                f"(train stage 2 with `lfdm train dm`, or import with `lfdm convert official --dm`)")
        lfae, _ = ckpt.load_lfae(loaded)
        unet = UNet3D(loaded.config.unet)
        ckpt.load_state_strict(unet, loaded.subset("unet."), "U-Net", uri)
        t = loaded.tensors
        sentences = (t[SENTENCES], t[SENTENCE_CLASSES].long()) if SENTENCES in t else None
        pipe = cls(loaded.config, lfae, unet, loaded.labels, t["text.embeddings"],
                   text_map=TextMap.from_tensors(t), sentences=sentences)
        pipe.checkpoint_hash = loaded.weights_hash
        return pipe.to(device)

    def save(self, uri: str, extra: Optional[dict] = None) -> None:
        """Write the pipeline as a full generation checkpoint (kind "lfdm") that ``load`` reads back."""
        tensors = {**ckpt.with_prefix("lfae.", self.lfae.state_dict()), **ckpt.with_prefix("unet.", self.unet.state_dict()),
                   "text.embeddings": self.text_embeddings, **(self.text_map.tensors() if self.text_map else {}),
                   **({SENTENCES: self.sentences[0].clone(), SENTENCE_CLASSES: self.sentences[1].clone()}
                      if self.sentences else {})}                           # clones: safetensors refuses shared memory
        ckpt.save_checkpoint(uri, self.config, tensors, kind="lfdm", labels=self.labels, extra=extra)

    def with_overrides(self, overrides: Mapping[str, object]) -> "ImageToVideoPipeline":
        """The same modules under a config with dotted overrides (``sample.steps``, ``data.num_frames``, ...);
        keys outside sample.* and data.num_frames would not match the weights and are refused."""
        bad = [k for k in overrides if not (k.startswith("sample.") or k == "data.num_frames")]
        if bad:
            raise ConfigError(f"{bad}: a trained pipeline takes overrides of sample.* and data.num_frames only")
        pipe = copy.copy(self)                   # shares the modules and embeddings
        pipe.config = with_overrides(self.config, overrides).validate()
        return pipe

    @property
    def prompt_encoder(self) -> PromptEncoder:
        """Free text -> conditions with the run's text encoder and map; the encoder loads on first use (once)."""
        if self._prompt_encoder is None:
            t, text_map = self.config.text, self.text_map
            if text_map is None and t.whiten:     # checkpoints from before the map was stored: refit it on the labels
                text_map = TextMap.fit(embed_labels(self.labels, t.encoder, t.max_length), range(len(self.labels)))
            self._prompt_encoder = PromptEncoder(t.encoder, t.max_length, text_map, self.config.unet.text_dim)
        return self._prompt_encoder

    def prompt_conditions(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, D) conditions of free-text prompts: the text encoder and map, then with ``sample.prompt_projection``
        the posterior mean over the training sentences under the training condition noise."""
        conditions = self.prompt_encoder(prompts)
        if not self.config.sample.prompt_projection:
            return conditions
        return project_prompts(conditions, self.training_sentences()[0], self.condition_noise_std())

    def condition_noise_std(self) -> float:
        """The standard deviation of the condition noise stage 2 trained with (``text.condition_noise``)."""
        return condition_noise_std(*self.training_sentences(), self.config.text.condition_noise)

    def training_sentences(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(conditions (P, D), class of each (P,)) of the sentences stage 2 trained on."""
        if self.sentences is None and not self.config.text.phrasings:     # trained on the labels alone
            return self.text_embeddings, torch.arange(len(self.labels), device=self.text_embeddings.device)
        if self.sentences is None:     # checkpoints from before the sentences were stored: re-embed them
            t = self.config.text
            run = run_conditions(t, self.labels, self.config.unet.text_dim, phrasings_for(t.phrasings, self.labels))
            self.sentences = (run.phrasing_embeddings, run.phrasing_classes)
        return self.sentences

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def to(self, device) -> "ImageToVideoPipeline":
        self.lfae.to(device)
        self.unet.to(device)
        self.text_embeddings = self.text_embeddings.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, labels: Sequence[Optional[str]], *, seeds: Sequence[int],
                 sampler: Optional[str] = None, steps: Optional[int] = None,
                 guidance: Optional[float] = None, eta: Optional[float] = None,
                 guidance_from: Optional[float] = None, num_frames: Optional[int] = None,
                 prompts: Optional[Sequence[Optional[str]]] = None,
                 callback: Optional[Callable[[int, int], None]] = None) -> GeneratedVideos:
        """images (B, 3, S, S) in [0, 1]; one seed per video (its noise generator, so a video does not
        depend on its batch); per video a label, or a free-text prompt (with label None), or neither: the
        null condition (stochastic I2V).
        Settings left None take the config's ``sample.*``; ``callback(i, total)`` after each sampler step."""
        cfg = self.config.sample
        sampler, steps = sampler or cfg.sampler, steps or cfg.steps
        guidance = cfg.guidance if guidance is None else guidance
        k = num_frames or self.config.data.num_frames
        device, b = self.device, images.shape[0]
        prompts = [None] * b if prompts is None else list(prompts)
        if len(labels) != b or len(seeds) != b or len(prompts) != b:
            raise ValueError("need one label (or prompt) and one seed per image")
        if any(lab is not None and p is not None for lab, p in zip(labels, prompts)):
            raise ValueError("give each video a label or a prompt, not both")
        images = images.to(device)

        # 1. conditions: a label's stored embedding, a prompt's through the text encoder and map, else null
        use_null = torch.tensor([lab is None and p is None for lab, p in zip(labels, prompts)], device=device)
        index = torch.tensor([0 if lab is None else label_index(self.labels, lab) for lab in labels], device=device)
        text = self.text_embeddings[index]
        asked = [i for i, p in enumerate(prompts) if p is not None]
        if asked:
            text = text.clone()
            text[asked] = self.prompt_conditions([prompts[i] for i in asked]).to(device, text.dtype)

        # 2. the source encoding, once per video: decoder skips, z0 and z0's share of the first conv
        skips = self.lfae.encode(images)
        z0_features = self.unet.encode_condition(skips[-1])
        h, w = skips[-1].shape[-2:]

        # 3. per-video noise from per-video generators, independent of the batch, over the n keyframes
        stride = self.config.diffusion.keyframe_stride
        n = keyframe_count(k, stride)
        generators = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]
        noise = PerVideoNoise(generators, (self.unet.channels, n, h, w), device)

        # 4. sample the flow/occlusion volume x0 (B, 3, n, h, w), then interpolate it to the K frames (B, 3, K, h, w)
        def model(x, t, null):
            n = x.shape[0] // b
            with bf16_autocast(device, cfg.bf16):
                out = self.unet(x, t, text=text.repeat(n, 1), z0_features=z0_features.repeat(n, 1, 1, 1, 1),
                                use_null=null)
            return out.float()
        guidance_from = cfg.guidance_from if guidance_from is None else guidance_from
        from_t = round(guidance_from * self.prediction.schedule.timesteps)
        denoiser = guided(self.prediction.eps_denoiser(model), guidance, use_null, from_t)
        x0 = sample(sampler, denoiser, self.prediction.schedule, noise(), noise, steps=steps,
                    eta=cfg.eta if eta is None else eta, threshold=self.config.diffusion.dynamic_threshold_quantile,
                    callback=callback)
        x0 = interpolate_keyframes(x0, stride)

        # 5. split into flows (B, K, h, w, 2) and occlusion maps (B, 1, K, h, w)
        flows, occlusions = target_to_flow(x0, self.config.diffusion.residual_flow, self.config.diffusion.flow_scale)

        # 6. warp and decode every frame, in batches, from the once-encoded source
        batch = self.config.sample.decode_batch or auto_decode_batch(device)
        frames = decode_frames(self.lfae, skips, images, flows, occlusions, batch)
        return GeneratedVideos(frames, flows, occlusions)


def auto_decode_batch(device: torch.device) -> int:
    """Frames per decoder call. On CPU small calls keep the 128x128 activations in cache: measured for
    mug128 40-frame decoding (benchmarks/bench_decode.py), 4 frames/call is 0.76x the per-frame time and
    40 frames/call 1.21x. On a GPU larger calls fill the device."""
    return 32 if device.type == "cuda" else 4


def decode_frames(lfae: LatentFlowAutoencoder, skips: List[torch.Tensor], images: torch.Tensor,
                  flows: torch.Tensor, occlusions: torch.Tensor, batch: int) -> torch.Tensor:
    """flows (B, K, h, w, 2), occlusions (B, 1, K, h, w) -> frames (B, 3, K, H, W)."""
    b, k = flows.shape[:2]
    flat_flow = flows.reshape(b * k, *flows.shape[2:])
    flat_occ = occlusions.permute(0, 2, 1, 3, 4).reshape(b * k, 1, *occlusions.shape[3:])
    owner = torch.arange(b * k, device=flows.device) // k
    out = []
    for start in range(0, b * k, batch):
        sel = slice(start, min(start + batch, b * k))
        idx = owner[sel]                                                  # which source each frame warps
        out.append(lfae.decoder([s[idx] for s in skips], images[idx], flat_flow[sel], flat_occ[sel]))
    frames = torch.cat(out)                                               # (B*K, 3, H, W)
    return frames.view(b, k, *frames.shape[1:]).permute(0, 2, 1, 3, 4)
