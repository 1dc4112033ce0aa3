"""build_model config validation: exact sentences, "did you mean", defaults, round trip."""

import pytest

from edgeact.errors import ConfigError
from edgeact.models import ModelConfig, build_model

from .support import STUDENT_CONFIGS, TEACHER_CONFIGS

BASE = {"inputs": ["frames"], "num_classes": 12, "encoder": {"name": "tsm_mobilenet_v2", "width": 0.35, "size": 112},
        "head": {"name": "lstm", "hidden": 256, "layers": 1}}


def _with(**changes):
    cfg = {**BASE, **changes}
    return {k: v for k, v in cfg.items() if v is not None}


@pytest.mark.parametrize("cfg, message", [
    (_with(encodr={}), "Unknown key 'encodr' in the model config. Did you mean 'encoder'? "
                       "Valid keys: encoder, head, inputs, num_classes, pose."),
    (_with(num_classes=None), "The model config needs 'num_classes' (the number of action classes)."),
    (_with(inputs=["frame"]), "Unknown input 'frame' for 'inputs'. Did you mean 'frames'? "
                              "Valid choices: frames, keypoints."),
    (_with(inputs=[]), "Model config 'inputs' must be a non-empty list of 'frames' and/or 'keypoints', got []."),
    (_with(num_classes="12"), "Model config 'num_classes' must be an integer, got str '12'."),
    (_with(num_classes=0), "Model config 'num_classes' must be >= 1, got 0."),
    (_with(encoder={"name": "tsm_mobilenetv2"}), "Unknown encoder 'tsm_mobilenetv2' for 'encoder.name'. Did you mean "
                                                 "'tsm_mobilenet_v2'? Valid choices: tsm_mobilenet_v2, tsm_resnet18, "
                                                 "tsm_resnet50."),
    (_with(encoder={"width": 0.5}), "Model config section 'encoder' needs 'name', one of: tsm_mobilenet_v2, "
                                    "tsm_resnet18, tsm_resnet50."),
    (_with(encoder={"name": "tsm_resnet18", "width": 0.5}),
     "Unknown key 'width' in model config section 'encoder'. Valid keys: fold_div, name, rgb_diff, shift, size."),
    (_with(encoder={"name": "tsm_mobilenet_v2", "shift": "onlin"}),
     "Unknown value 'onlin' for 'encoder.shift'. Did you mean 'online'? Valid choices: online, bidirectional, none."),
    (_with(encoder={"name": "tsm_mobilenet_v2", "size": [112, 112, 3]}),
     "Model config 'encoder.size' must have 2 items, got 3."),
    (_with(encoder={"name": "tsm_mobilenet_v2", "size": 16}), "Model config 'encoder.size[0]' must be >= 32, got 16."),
    (_with(encoder={"name": "tsm_mobilenet_v2", "rgb_diff": "yes"}),
     "Model config 'encoder.rgb_diff' must be true or false, got str 'yes'."),
    (_with(head={"name": "lstm", "hiden": 256}), "Unknown key 'hiden' in model config section 'head'. Did you mean "
                                                 "'hidden'? Valid keys: bidirectional, dropout, hidden, layers, name."),
    (_with(head={"name": "lstm", "layers": 4}), "Model config 'head.layers' must be between 1 and 3, got 4."),
    (_with(head={"name": "transformer"}), "Unknown head 'transformer' for 'head.name'. Valid choices: lstm, gru, "
                                          "two_stage, attention, netvlad, convlstm."),
    (_with(head={"name": "two_stage"}), "Head 'two_stage' needs both 'frames' (stage 1, context features) and "
                                        "'keypoints' (stage 2, action features) in 'inputs'."),
    (_with(pose={"joints": 18}), "The model config has a 'pose' section but 'keypoints' is not in 'inputs'; add "
                                 "'keypoints' to 'inputs' or remove the section."),
    (_with(inputs=["frames", "keypoints"], head={"name": "convlstm"}),
     "Head 'convlstm' reads frame feature maps; its 'inputs' must be ['frames'] only."),
    (_with(head={"name": "convlstm", "attention": ["average", "spatial"]}),
     "Unknown value 'spatial' for 'head.attention[1]'. Valid choices: average, channel, linear."),
    (_with(inputs=["keypoints"], encoder=None, pose={"coords": 4}), "Model config 'pose.coords' must be between 2 "
                                                                    "and 3, got 4."),
    (["frames"], "The model config must be a mapping, got list."),
])
def test_invalid_configs_are_answered_with_exact_sentences(cfg, message):
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    assert str(err.value) == message


def test_fold_div_too_large_for_the_width():
    with pytest.raises(ConfigError) as err:
        build_model(_with(encoder={"name": "tsm_mobilenet_v2", "width": 0.35, "fold_div": 16}))
    assert str(err.value) == ("Temporal shift with fold_div=16 does not fit a 8-channel layer; "
                              "use a smaller fold_div or a wider encoder.")


def test_defaults_and_normalisation():
    cfg = ModelConfig.from_dict({"inputs": ["keypoints", "frames"], "num_classes": 3,
                                 "head": {"name": "two_stage"}, "encoder": {"name": "tsm_resnet18", "size": 128}})
    assert cfg.inputs == ("frames", "keypoints")  # canonical order: step_flat's input order
    assert cfg.encoder.arch.size == (128, 128) and cfg.encoder.arch.shift == "online" and not cfg.encoder.rgb_diff
    assert cfg.pose.joints == 18 and cfg.pose.dim == 256
    assert cfg.head.arch.hidden == 256
    assert ModelConfig.from_dict({"inputs": "frames", "num_classes": 2, "head": {"name": "gru"}}).encoder.name == \
        "tsm_mobilenet_v2"


@pytest.mark.parametrize("cfg", list(STUDENT_CONFIGS.values()) + list(TEACHER_CONFIGS.values()) + [BASE])
def test_config_round_trips(cfg):
    parsed = ModelConfig.from_dict(cfg)
    assert ModelConfig.from_dict(parsed.to_dict()) == parsed
