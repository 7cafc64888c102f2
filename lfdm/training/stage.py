"""What one training stage hands to the one training loop (``lfdm.training.run.run_stage``).

A ``Stage`` is built by ``lfae_stage.build_lfae_stage`` or ``dm_stage.build_dm_stage`` on every worker;
the loop only sees this description: the objective and its optimiser state, the data, the loss, and how
the stage's weights go into a step checkpoint, come back from one, and leave as the final model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch import nn
from torch.utils.data import Dataset

from lfdm.checkpoint import Checkpoint
from lfdm.config import LFDMConfig, StageTrainConfig
from lfdm.training.steps import LossFn, TrainState


@dataclass
class Stage:
    name: str                                                      # "lfae" | "dm": its section train.<name>
    config: LFDMConfig
    objective: nn.Module
    state: TrainState
    dataset: Dataset
    num_videos: int
    loss_fn: LossFn
    kind: str                                                      # checkpoint kind of its step checkpoints
    step_tensors: Callable[[], Dict[str, torch.Tensor]]           # weights of a resumable step checkpoint
    restore: Callable[[Checkpoint], None]                          # load them back
    export: Callable[[str, dict], None]                            # (uri, provenance): write the final model
    sample: Optional[Callable[[dict, str], None]] = None           # (batch, png uri): sample images
    labels: tuple = ()
    provenance: dict = field(default_factory=dict)                 # recorded in every checkpoint's extra
    notices: tuple = ()                                            # said once when training starts
    before_step: Optional[Callable[[int], None]] = None           # told the step number before each step
    health: Optional[Callable[[List[dict]], Optional[str]]] = None  # logged metrics -> why to stop, or None

    @property
    def train(self) -> StageTrainConfig:
        return getattr(self.config.train, self.name)
