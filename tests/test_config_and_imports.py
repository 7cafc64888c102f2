import subprocess
import sys

import pytest

from lfdm.config import ConfigError, LFDMConfig, from_dict, to_dict, parse_override_args
from lfdm.presets import PRESETS, get_preset


def test_import_lfdm_loads_neither_ray_nor_fastapi():
    code = ("import sys, lfdm, lfdm.cli, lfdm.presets, lfdm.data.datasets, lfdm.io.storage; "
            "import lfdm.data.synthetic, lfdm.data.motion_classifier; "
            "bad = [m for m in ('ray', 'fastapi', 'serve', 'ray_jobs') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_and_roundtrip(name):
    cfg = get_preset(name)
    assert cfg.name == name
    assert from_dict(LFDMConfig, to_dict(cfg)) == cfg


def test_paper_hyperparameters_in_presets():
    mug, natops = get_preset("mug128"), get_preset("natops128")
    assert mug.train.lfae.batch_size == 100 and mug.train.lfae.steps == 46500
    assert mug.train.dm.batch_size == 5 and mug.train.dm.steps == 111600
    assert natops.train.dm.lr == 1e-4 and natops.unet.learn_null_cond and not natops.unet.use_deconv
    assert get_preset("mhad128").autoencoder.region.pad == 0 and mug.autoencoder.region.pad == 3
    assert get_preset("mug64").data.image_size == 64


def test_overrides_are_typed_and_unknown_keys_are_errors():
    cfg = get_preset("tiny", parse_override_args(["unet.dim=32", "train.dm.lr=0.01", "sample.sampler=dpmpp",
                                                  "unet.dim_mults=[1, 2, 2]"]))
    assert cfg.unet.dim == 32 and cfg.train.dm.lr == 0.01 and cfg.unet.dim_mults == (1, 2, 2)
    with pytest.raises(ConfigError, match="unknown config key"):
        get_preset("tiny", {"unet.dimension": 3})
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(LFDMConfig, {"unet": {"dim": 3, "colour": 1}})
    with pytest.raises(ConfigError, match="expected an integer"):
        get_preset("tiny", {"unet.dim": "wide"})
    with pytest.raises(ConfigError, match="sample.sampler"):
        get_preset("tiny", {"sample.sampler": "euler"})
    with pytest.raises(ConfigError, match="ddpm runs all 1000 steps"):        # a setting that cannot take effect
        get_preset("tiny", {"sample.sampler": "ddpm"})
    with pytest.raises(ConfigError, match="eta=0.5 has no effect on dpmpp"):
        get_preset("tiny", {"sample.sampler": "dpmpp", "sample.eta": 0.5})
    assert get_preset("tiny", parse_override_args(["train.dm.lr=1e-3"])).train.dm.lr == 1e-3   # YAML reads 1e-3 as text
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("mug256")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override_args(["unet.dim"])
