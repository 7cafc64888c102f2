import pytest
import torch

from lfdm.config import StageTrainConfig
from lfdm.training.optim import build_optimizer


def test_build_optimizer_fuses_adam_and_matches_the_per_tensor_update():
    torch.manual_seed(0)
    start = [torch.randn(7, 5), torch.randn(5), torch.randn(3, 3, 3)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(4)]
    cfg = StageTrainConfig(lr=1e-2, betas=(0.9, 0.99))
    built = [torch.nn.Parameter(p.clone()) for p in start]
    plain = [torch.nn.Parameter(p.clone()) for p in start]
    opt = build_optimizer(built, cfg)
    reference = torch.optim.Adam(plain, lr=1e-2, betas=(0.9, 0.99), foreach=False)
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert opt.defaults["fused"] is True
    for g in grads:
        for ps in (built, plain):
            for p, gg in zip(ps, g):
                p.grad = gg.clone()
        opt.step()
        reference.step()
    for a, b, s in zip(built, plain, start):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)          # fused: the same update up to an ulp
        assert (a - s).abs().max() > 1e-2                             # the steps moved it


def test_build_optimizer_refuses_nothing_to_train():
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([torch.nn.Parameter(torch.zeros(2), requires_grad=False)], StageTrainConfig())
