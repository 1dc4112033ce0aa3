"""load_pretrained against fake torchvision/timm checkpoints made by reference converters below
(written independently of the loader: our names -> theirs)."""

import re

import pytest
import torch

from edgeact.errors import ConfigError, ModelFormatError
from edgeact.models import build_model, load_pretrained
from edgeact.models.mobilenet_v2 import INVERTED_RESIDUAL_SETTING, MobileNetV2Config, TSMMobileNetV2
from edgeact.models.resnet import ResNetConfig, TSMResNet

from .support import randomize_batchnorm


def to_torchvision_mobilenet(model: TSMMobileNetV2) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("stem."):
            name = key.replace("stem.conv.", "features.0.0.").replace("stem.bn.", "features.0.1.")
        elif key.startswith("last."):
            name = key.replace("last.conv.", "features.18.0.").replace("last.bn.", "features.18.1.")
        else:
            b, part, layer, rest = re.fullmatch(r"blocks\.(\d+)\.(\w+)\.(conv|bn)\.(.+)", key).groups()
            b = int(b)
            expands = b > 0  # torchvision's first block has expansion 1: no expand conv
            index = {"expand": 0, "depthwise": 1 if expands else 0}.get(part)
            if index is not None:
                sub = f"conv.{index}.{0 if layer == 'conv' else 1}"
            else:  # project: a bare conv then a BN
                sub = f"conv.{(2 if expands else 1) + (0 if layer == 'conv' else 1)}"
            name = f"features.{b + 1}.{sub}.{rest}"
        out[name] = value.clone()
    out["classifier.1.weight"] = torch.randn(1000, model.out_channels)
    out["classifier.1.bias"] = torch.randn(1000)
    return out


def to_timm_mobilenet(model: TSMMobileNetV2) -> dict[str, torch.Tensor]:
    starts = [0]
    for _, _, n, _ in INVERTED_RESIDUAL_SETTING:
        starts.append(starts[-1] + n)
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith(("stem.", "last.")):
            module, layer, rest = key.split(".", 2)
            top = {"stem.conv": "conv_stem", "stem.bn": "bn1", "last.conv": "conv_head", "last.bn": "bn2"}
            name = f"{top[module + '.' + layer]}.{rest}"
        else:
            b, part, rest = re.fullmatch(r"blocks\.(\d+)\.(\w+\.\w+)\.(.+)", key).groups()
            b = int(b)
            stage = max(s for s in range(len(starts) - 1) if starts[s] <= b)
            names = ({"depthwise.conv": "conv_dw", "depthwise.bn": "bn1", "project.conv": "conv_pw",
                      "project.bn": "bn2"}
                     if stage == 0 else
                     {"expand.conv": "conv_pw", "expand.bn": "bn1", "depthwise.conv": "conv_dw", "depthwise.bn": "bn2",
                      "project.conv": "conv_pwl", "project.bn": "bn3"})
            name = f"blocks.{stage}.{b - starts[stage]}.{names[part]}.{rest}"
        out[name] = value.clone()
    out["classifier.weight"] = torch.randn(1000, model.out_channels)
    return out


def _mobilenet(seed):
    torch.manual_seed(seed)
    return randomize_batchnorm(TSMMobileNetV2(MobileNetV2Config(0.5, (32, 32))), seed).eval()


def _assert_same(a, b):
    assert list(a.state_dict()) == list(b.state_dict())
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k
    frames = torch.randn(1, 3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(frames), b(frames))


@pytest.mark.parametrize("convert, dropped", [
    (to_torchvision_mobilenet, ["classifier.1.weight", "classifier.1.bias"]),
    (to_timm_mobilenet, ["classifier.weight"]),
])
def test_mobilenet_loads_torchvision_and_timm_names(convert, dropped):
    source, target = _mobilenet(1), _mobilenet(2)
    checkpoint = convert(source)
    assert "features.2.conv.0.0.weight" in checkpoint or "blocks.1.0.conv_pw.weight" in checkpoint
    assert load_pretrained(target, checkpoint) == dropped
    _assert_same(source, target)


def test_resnet_loads_torchvision_names_from_a_wrapped_file(tmp_path):
    torch.manual_seed(1)
    source = randomize_batchnorm(TSMResNet(ResNetConfig((32, 32)), 18), 1).eval()
    target = TSMResNet(ResNetConfig((32, 32)), 18).eval()
    checkpoint = {f"module.{k}": v for k, v in source.state_dict().items()}  # saved from DataParallel
    checkpoint["module.fc.weight"], checkpoint["module.fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    assert "module.layer1.0.conv1.weight" in checkpoint
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": checkpoint, "epoch": 3}, path)
    assert load_pretrained(target, path) == ["fc.weight", "fc.bias"]
    _assert_same(source, target)


def test_streaming_model_loads_every_frame_encoder():
    model = build_model({"inputs": ["frames"], "num_classes": 3, "head": {"name": "lstm", "hidden": 4},
                         "encoder": {"name": "tsm_mobilenet_v2", "width": 0.5, "size": 32, "rgb_diff": True}})
    source = _mobilenet(1)
    load_pretrained(model, to_torchvision_mobilenet(source))
    _assert_same(source, model.rgb.eval())
    _assert_same(source, model.rgb_diff.encoder.eval())


def test_missing_and_unexpected_keys_are_listed():
    target = TSMResNet(ResNetConfig((32, 32)), 18)
    checkpoint = dict(target.state_dict())
    del checkpoint["layer4.1.bn2.running_var"]
    checkpoint["layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(ModelFormatError) as err:
        load_pretrained(target, checkpoint)
    assert str(err.value) == (
        "Pretrained weights from a state dict do not fit the tsm_resnet18 encoder: missing keys (1): "
        "layer4.1.bn2.running_var; unexpected keys (1): layer5.0.conv1.weight. Keys are read as torchvision/timm "
        "names; check the architecture, depth and width.")


def test_wrong_width_lists_shape_mismatches():
    with pytest.raises(ModelFormatError) as err:
        load_pretrained(TSMMobileNetV2(MobileNetV2Config(1.0, (32, 32))), to_torchvision_mobilenet(_mobilenet(0)))
    assert "wrongly shaped keys (" in str(err.value)
    assert ": stem.conv.weight [16, 3, 3, 3] (ours [32, 3, 3, 3]), " in str(err.value)


def test_missing_file_and_keypoint_only_models():
    with pytest.raises(ModelFormatError) as err:
        load_pretrained(_mobilenet(0), "/nonexistent/weights.pth")
    assert str(err.value) == "Pretrained weights file '/nonexistent/weights.pth' does not exist."
    pose_model = build_model({"inputs": ["keypoints"], "num_classes": 3, "head": {"name": "gru", "hidden": 4}})
    with pytest.raises(ConfigError) as err:
        load_pretrained(pose_model, {})
    assert str(err.value) == ("The model has no frame encoder to load pretrained weights into "
                              "(its inputs are keypoints only).")
