"""TSM-MobileNetV2: the edge-default frame encoder (MIT online TSM, method M4 on MobileNetV2).

The trunk is torchvision's MobileNetV2 (same widths and rounding, so ImageNet checkpoints load;
see :meth:`TSMMobileNetV2.map_pretrained_key`). A temporal shift sits at the start of the
residual branch of every inverted-residual block that has an identity shortcut (stride 1,
in == out channels): 10 shift points at any width, exactly where MIT's online TSM puts them.
Blocks without a shortcut are not shifted, because there the shift would overwrite channels
that no identity path carries forward.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor, nn

from edgeact.models.frame_encoder import FrameEncoder, init_like_torchvision
from edgeact.models.temporal_shift import SHIFT_MODES, ShiftFn

# (expansion t, output channels c, repeats n, first stride s), torchvision's table.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                             (6, 160, 3, 2), (6, 320, 1, 1))


@dataclass(frozen=True)
class MobileNetV2Config:
    width: float = field(default=1.0, metadata={"min": 0.1, "max": 4.0})  # width multiplier
    size: tuple[int, int] = field(default=(224, 224), metadata={"min": 32})  # input H, W
    shift: str = field(default="online", metadata={"choices": SHIFT_MODES})
    fold_div: int = field(default=8, metadata={"min": 2})  # 1/fold_div of the channels shift


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (nearest multiple of 8, never 10% below the exact width)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU6 (or no activation for the linear projection)."""

    def __init__(self, inp: int, oup: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(oup)
        self.act = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """expand 1x1 -> depthwise 3x3 -> project 1x1, with the temporal shift before expand."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, shift_point: Optional[tuple[str, int]]):
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.residual = stride == 1 and inp == oup
        self.shift_point = shift_point
        self.expand = ConvBN(inp, hidden, 1) if expand_ratio != 1 else nn.Identity()
        self.depthwise = ConvBN(hidden, hidden, 3, stride, groups=hidden)
        self.project = ConvBN(hidden, oup, 1, act=False)

    def forward(self, x: Tensor, shift: ShiftFn) -> Tensor:
        h = shift(*self.shift_point, x) if self.shift_point else x  # [N,inp,H,W], shortcut keeps x unshifted
        h = self.project(self.depthwise(self.expand(h)))  # [N,oup,H/s,W/s]
        return x + h if self.residual else h


class TSMMobileNetV2(FrameEncoder):
    name = "tsm_mobilenet_v2"

    def __init__(self, cfg: MobileNetV2Config, spatial: bool = False):
        super().__init__(cfg.size, cfg.shift, cfg.fold_div, spatial)
        inp = make_divisible(32 * cfg.width)
        self.stem = ConvBN(3, inp, 3, stride=2)
        blocks = []
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            oup = make_divisible(c * cfg.width)
            for i in range(n):
                stride = s if i == 0 else 1
                shift_point = self.shift_point(len(blocks), inp) if stride == 1 and inp == oup else None
                blocks.append(InvertedResidual(inp, oup, stride, t, shift_point))
                inp = oup
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = make_divisible(1280 * max(1.0, cfg.width))
        self.last = ConvBN(inp, self.out_channels, 1)
        init_like_torchvision(self)

    def trunk(self, x: Tensor, shift: ShiftFn) -> Tensor:
        x = self.stem(x)  # [N,32w,H/2,W/2]
        for block in self.blocks:
            x = block(x, shift)
        return self.last(x)  # [N,out_channels,H/32,W/32]

    def map_pretrained_key(self, key: str) -> Optional[str]:
        """torchvision or timm MobileNetV2 key -> our key; None for the ImageNet classifier."""
        if key.startswith("classifier."):
            return None
        last = len(self.blocks) + 1
        m = re.fullmatch(r"features\.(\d+)\.(.+)", key)  # torchvision
        if m and int(m.group(1)) <= last:
            index, rest = int(m.group(1)), m.group(2)
            if index == 0:
                return "stem." + _conv_bn(rest, "0", "1")
            if index == last:
                return "last." + _conv_bn(rest, "0", "1")
            block = index - 1
            parts = ["expand", "depthwise"] if isinstance(self.blocks[block].expand, ConvBN) else ["depthwise"]
            j = len(parts)
            names = {f"conv.{i}.0.": f"{p}.conv." for i, p in enumerate(parts)}
            names |= {f"conv.{i}.1.": f"{p}.bn." for i, p in enumerate(parts)}
            names |= {f"conv.{j}.": "project.conv.", f"conv.{j + 1}.": "project.bn."}
            return f"blocks.{block}." + _rename_prefix(rest, names)
        m = re.fullmatch(r"blocks\.(\d+)\.(\d+)\.(.+)", key)  # timm: blocks.<stage>.<index>
        if m:
            stage, index, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            block = sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING[:stage]) + index
            if stage == 0:  # timm's depthwise-separable first block
                names = {"conv_dw.": "depthwise.conv.", "bn1.": "depthwise.bn.", "conv_pw.": "project.conv.",
                         "bn2.": "project.bn."}
            else:
                names = {"conv_pw.": "expand.conv.", "bn1.": "expand.bn.", "conv_dw.": "depthwise.conv.",
                         "bn2.": "depthwise.bn.", "conv_pwl.": "project.conv.", "bn3.": "project.bn."}
            return f"blocks.{block}." + _rename_prefix(rest, names)
        return _rename_prefix(key, {"conv_stem.": "stem.conv.", "bn1.": "stem.bn.", "conv_head.": "last.conv.",
                                    "bn2.": "last.bn."})


def _conv_bn(rest: str, conv: str, bn: str) -> str:
    return _rename_prefix(rest, {f"{conv}.": "conv.", f"{bn}.": "bn."})


def _rename_prefix(key: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key  # unknown: reported as unexpected by the loader

