import json
import os

import pytest
import torch

from lfdm.cli import main as cli
from lfdm.config import CollapseGuardConfig, ConfigError
from lfdm.presets import get_preset
from lfdm.training.collapse_guard import STOPPED, collapse_check, stopped_reason
from lfdm.training.lfae_stage import build_lfae_stage
from lfdm.training.run import LocalHooks, run_stage


def logs(*pairs):
    return [{"step": s, "flow_px": f} for s, f in pairs]


def test_collapse_check_averages_the_window_once_at_its_end():
    check = collapse_check(CollapseGuardConfig(window=(0.5, 0.7), min_flow_px=0.05), steps=100)
    still = logs((25, 0.3), (50, 0.01), (60, 0.02), (70, 0.03))
    assert check(still[:3]) is None                                     # the window has not ended
    reason = check(still)
    assert "step 70 of 100" in reason and "0.0200 px" in reason and "steps 50-70 (3 logged)" in reason
    assert check(still + logs((80, 0.0))) is None                       # checked once only
    moving = collapse_check(CollapseGuardConfig(window=(0.5, 0.7), min_flow_px=0.05), steps=100)
    assert moving(logs((50, 0.01), (60, 0.2), (75, 0.3))) is None      # mean 0.105: the flow took off
    resumed = collapse_check(CollapseGuardConfig(window=(0.5, 0.7), min_flow_px=0.05), steps=100)
    assert resumed(logs((80, 0.0))) is None                              # resumed past the window: nothing seen
    assert collapse_check(CollapseGuardConfig(), steps=100) is None     # off
    for preset in ("mug128", "mhad128", "natops128"):
        assert get_preset(preset).train.lfae_guard == CollapseGuardConfig()
    with pytest.raises(ConfigError, match="lfae_guard"):
        get_preset("tiny", {"train.lfae_guard.window": (0.7, 0.5)})


def test_a_stopped_stage1_exports_nothing_and_is_not_resumed(tmp_path, tiny_dataset):
    root, _ = tiny_dataset
    manifest = str(root / "manifest.parquet")
    cfg = get_preset("tiny", {"train.lfae.steps": 6, "train.lfae.log_every": 1, "train.lfae.checkpoint_every": 2,
                              "train.lfae_guard.window": (0.0, 0.5), "train.lfae_guard.min_flow_px": 1e6})
    run, model = str(tmp_path / "run"), str(tmp_path / "model")
    lines = []
    result = run_stage(build_lfae_stage(cfg, manifest, torch.device("cpu")), LocalHooks(torch.device("cpu")), run,
                       model, log=lines.append)
    assert "stage 1 stopped at step 3 of 6" in result["stopped"] and any("stopped at step 3" in s for s in lines)
    assert json.load(open(os.path.join(run, STOPPED)))["step"] == 3 and stopped_reason(run) == result["stopped"]
    assert not os.path.exists(model)
    assert len(open(os.path.join(run, "metrics.jsonl")).readlines()) == 3      # the log up to the stop is kept
    again = run_stage(build_lfae_stage(cfg, manifest, torch.device("cpu")), LocalHooks(torch.device("cpu")), run,
                      model, log=lines.append)
    assert again == {"stopped": result["stopped"]} and "is not resumed" in lines[-1] and not os.path.exists(model)


def test_cli_says_why_stage1_stopped(tmp_path, tiny_dataset, capsys):
    root, _ = tiny_dataset
    code = cli(["train", "lfae", "--preset", "tiny", "--data", str(root / "manifest.parquet"), "--out",
                str(tmp_path / "out"), "--device", "cpu", "--override", "train.lfae.steps=4", "train.lfae.log_every=1",
                "train.lfae_guard.window=[0,0.5]", "train.lfae_guard.min_flow_px=1e6"])
    err = capsys.readouterr().err
    assert code == 2 and "stage 1 stopped at step 2 of 4" in err and "another train.lfae.seed" in err
    assert not os.path.exists(tmp_path / "out" / "config.json")
