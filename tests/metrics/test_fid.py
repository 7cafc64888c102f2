import numpy as np
import pytest
import torch

from lfdm.metrics.fid import InceptionWeightsError, fid_and_sfid, frame_features, load_inception


class TinyInception(torch.nn.Module):
    """Same call signature as StyleGAN2-ADA's TorchScript FID network."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.conv(x.float() / 255).mean(dim=(2, 3))


def test_missing_inception_weights_is_a_clear_error(tmp_path):
    with pytest.raises(InceptionWeightsError, match="inception-2015-12-05.pt"):
        load_inception(str(tmp_path / "nope.pt"))
    with pytest.raises(InceptionWeightsError):
        load_inception(None)


def test_frame_fid_and_per_subject_sfid(tmp_path):
    torch.jit.script(TinyInception()).save(str(tmp_path / "inception.pt"))
    extract = load_inception(str(tmp_path / "inception.pt"))
    rng = np.random.default_rng(0)
    real = [rng.integers(0, 255, (6, 20, 20, 3), dtype=np.uint8) for _ in range(4)]
    fake = [np.clip(v.astype(int) + 40, 0, 255).astype(np.uint8) for v in real]
    fr, ff = frame_features(extract, real, batch=5), frame_features(extract, fake, batch=7)
    assert fr.shape == (24, 16)
    subjects = ["a"] * 12 + ["b"] * 12
    out = fid_and_sfid(fr, subjects, ff, subjects)
    assert out["fid"] > 0 and set(out["per_subject"]) == {"a", "b"} and out["sfid_mean"] > 0
    same = fid_and_sfid(fr, subjects, fr, subjects)
    assert same["fid"] == pytest.approx(0, abs=1e-6)
