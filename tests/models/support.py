"""Shared test helpers: model configs, realistic random inputs, non-trivial BatchNorm statistics."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# Small widths and sizes: the suite runs on 2 CPU cores.
STUDENT_CONFIGS = {
    "pose_lstm": {"inputs": ["keypoints"], "num_classes": 5,
                  "pose": {"joints": 18, "people": 2, "center_joints": [8, 11], "dim": 32},
                  "head": {"name": "lstm", "hidden": 16, "layers": 2}},
    "pose_gru": {"inputs": "keypoints", "num_classes": 4, "pose": {"joints": 25, "coords": 3, "dim": 24},
                 "head": {"name": "gru", "hidden": 12, "layers": 3}},
    "mobilenet_lstm": {"inputs": ["frames"], "num_classes": 6,
                       "encoder": {"name": "tsm_mobilenet_v2", "width": 0.35, "size": 64},
                       "head": {"name": "lstm", "hidden": 16}},
    "mobilenet_rgbdiff_lstm": {"inputs": ["frames"], "num_classes": 6,
                               "encoder": {"name": "tsm_mobilenet_v2", "width": 0.35, "size": [64, 96],
                                           "rgb_diff": True},
                               "head": {"name": "lstm", "hidden": 16}},
    "resnet18_gru": {"inputs": ["frames"], "num_classes": 5, "encoder": {"name": "tsm_resnet18", "size": 64},
                     "head": {"name": "gru", "hidden": 16, "layers": 2}},
    "two_stage_m1": {"inputs": ["frames", "keypoints"], "num_classes": 5,
                     "encoder": {"name": "tsm_mobilenet_v2", "width": 0.35, "size": 64},
                     "pose": {"joints": 18, "people": 2, "dim": 16}, "head": {"name": "two_stage", "hidden": 16}},
    "pose3d_features": {"inputs": ["keypoints"], "num_classes": 5,
                        "pose": {"joints": 20, "coords": 3, "people": 2, "center_joints": [0], "dim": 16,
                                 "features": ["position", "bone", "velocity"], "align": [12, 16],
                                 "parents": [0, 0, 1, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18]},
                        "head": {"name": "gru", "hidden": 12}},
    "attention_m5": {"inputs": ["keypoints"], "num_classes": 7, "pose": {"joints": 14, "dim": 32},
                     "head": {"name": "attention", "hidden": 16, "layers": 3, "mlp": [16, 8], "share_prob": 0.5}},
    "convlstm_m2": {"inputs": ["frames"], "num_classes": 5,
                    "encoder": {"name": "tsm_resnet18", "size": 64, "shift": "none"},
                    "head": {"name": "convlstm", "channels": 8, "lstm_hidden": 8, "lstm_layers": 3, "fc": 8}},
}

TEACHER_CONFIGS = {
    "bilstm": {"inputs": ["keypoints"], "num_classes": 5, "pose": {"dim": 16},
               "head": {"name": "lstm", "hidden": 8, "bidirectional": True}},
    "bigru_bishift": {"inputs": ["frames"], "num_classes": 5,
                      "encoder": {"name": "tsm_mobilenet_v2", "width": 0.35, "size": 64, "shift": "bidirectional"},
                      "head": {"name": "gru", "hidden": 8, "bidirectional": True}},
    "netvlad": {"inputs": ["keypoints"], "num_classes": 5, "pose": {"dim": 16},
                "head": {"name": "netvlad", "clusters": 4}},
    "two_stage_teacher": {"inputs": ["frames", "keypoints"], "num_classes": 5,
                          "encoder": {"name": "tsm_mobilenet_v2", "width": 0.35, "size": 64}, "pose": {"dim": 16},
                          "head": {"name": "two_stage", "hidden": 8, "bidirectional": True}},
}


def random_keypoints(*lead: int, people: int = 1, joints: int = 18, coords: int = 2,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """[*lead, P, J, coords+1] pixel coordinates in a 640x480 frame, ~20% joints missing
    (with NaN coordinates, as some pose estimators report them)."""
    shape = (*lead, people, joints)
    xy = torch.rand(*shape, coords, generator=generator) * torch.tensor([640.0, 480.0, 300.0][:coords])
    visible = (torch.rand(*shape, 1, generator=generator) > 0.2).float()
    xy = torch.where(visible > 0, xy, torch.nan)
    return torch.cat((xy, visible), dim=-1)


def random_inputs(model, batch: int, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Offline inputs [B,T,...] for every input the model declares."""
    g = torch.Generator().manual_seed(seed)
    inputs = {}
    for spec in model.input_spec:
        if spec.name == "keypoints":
            people, joints, channels = spec.shape
            inputs["keypoints"] = random_keypoints(batch, steps, people=people, joints=joints,
                                                   coords=channels - 1, generator=g)
        else:
            inputs[spec.name] = torch.randn(batch, steps, *spec.shape, generator=g)
    return inputs


def at_step(inputs: dict[str, torch.Tensor], t: int) -> dict[str, torch.Tensor]:
    return {name: x[:, t] for name, x in inputs.items()}


def randomize_batchnorm(model: nn.Module, seed: int = 0, statistics: bool = True) -> nn.Module:
    """Random BN affine parameters (and running statistics), so eval-mode BN is not the identity
    and a loader that skipped any of them would be caught."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                if statistics:
                    m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model


def calibrate_batchnorm(model: nn.Module, run: Callable[[], object], seed: int = 0) -> nn.Module:
    """Running statistics measured while ``run()`` feeds the model (as after training), random
    affine parameters, eval mode. With unit statistics a randomly initialised deep MobileNetV2
    saturates its ReLU6s, every frame looks alike, and the tests lose their teeth."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        run()
    return randomize_batchnorm(model, seed, statistics=False).eval()
