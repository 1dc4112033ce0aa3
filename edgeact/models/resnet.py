"""TSM-ResNet-18 / -50 frame encoders (method M4's backbone; plain ResNet-50 for M2 with shift "none").

Module names equal torchvision's (``conv1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``...),
which timm's ResNets share, so ImageNet checkpoints load with only ``fc.*`` dropped. The
temporal shift sits at the start of every residual branch, before ``conv1`` (TSM's
"residual shift"): the shortcut carries the unshifted frame, so spatial features survive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from torch import Tensor, nn

from edgeact.models.frame_encoder import FrameEncoder, init_like_torchvision
from edgeact.models.temporal_shift import SHIFT_MODES, ShiftFn


@dataclass(frozen=True)
class ResNetConfig:
    size: tuple[int, int] = field(default=(224, 224), metadata={"min": 32})  # input H, W
    shift: str = field(default="online", metadata={"choices": SHIFT_MODES})
    fold_div: int = field(default=8, metadata={"min": 2})  # 1/fold_div of the channels shift


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp: int, planes: int, stride: int, shift_point: Optional[tuple[str, int]]):
        super().__init__()
        self.shift_point = shift_point
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = _downsample(inp, planes, stride)

    def forward(self, x: Tensor, shift: ShiftFn) -> Tensor:
        h = shift(*self.shift_point, x) if self.shift_point else x  # [N,inp,H,W]
        h = self.relu(self.bn1(self.conv1(h)))  # [N,planes,H/s,W/s]
        h = self.bn2(self.conv2(h))
        return self.relu(h + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride is on the 3x3 conv."""

    expansion = 4

    def __init__(self, inp: int, planes: int, stride: int, shift_point: Optional[tuple[str, int]]):
        super().__init__()
        self.shift_point = shift_point
        self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = _downsample(inp, planes * 4, stride)

    def forward(self, x: Tensor, shift: ShiftFn) -> Tensor:
        h = shift(*self.shift_point, x) if self.shift_point else x  # [N,inp,H,W]
        h = self.relu(self.bn1(self.conv1(h)))  # [N,planes,H,W]
        h = self.relu(self.bn2(self.conv2(h)))  # [N,planes,H/s,W/s]
        h = self.bn3(self.conv3(h))  # [N,4*planes,H/s,W/s]
        return self.relu(h + (x if self.downsample is None else self.downsample(x)))


def _downsample(inp: int, oup: int, stride: int) -> Optional[nn.Sequential]:
    if stride == 1 and inp == oup:
        return None
    return nn.Sequential(nn.Conv2d(inp, oup, 1, stride, bias=False), nn.BatchNorm2d(oup))


# depth -> (block, blocks per stage)
DEPTHS: dict[int, tuple[type[Union[BasicBlock, Bottleneck]], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class TSMResNet(FrameEncoder):
    def __init__(self, cfg: ResNetConfig, depth: int, spatial: bool = False):
        super().__init__(cfg.size, cfg.shift, cfg.fold_div, spatial)
        self.name = f"tsm_resnet{depth}"
        block, counts = DEPTHS[depth]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inp, index = 64, 0
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), counts)):
            layer = []
            for i in range(count):
                layer.append(block(inp, planes, 2 if i == 0 and stage > 0 else 1, self.shift_point(index, inp)))
                inp, index = planes * block.expansion, index + 1
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layer))
        self.out_channels = inp
        init_like_torchvision(self)

    def trunk(self, x: Tensor, shift: ShiftFn) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [N,64,H/4,W/4]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x = block(x, shift)
        return x  # [N,out_channels,H/32,W/32]

    def map_pretrained_key(self, key: str) -> Optional[str]:
        """torchvision / timm ResNet key -> our key (the same); None for the ImageNet ``fc``."""
        return None if key.startswith("fc.") else key
