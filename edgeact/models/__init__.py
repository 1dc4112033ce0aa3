"""PyTorch models of edgeact: every deployable model is one definition with two forms,
offline (whole clips, for training) and a streaming step with explicit, named state.

    model = build_model({"inputs": ["frames"], "num_classes": 12,
                         "encoder": {"name": "tsm_mobilenet_v2", "width": 0.35, "size": 112},
                         "head": {"name": "lstm", "hidden": 256}})
    out = model.forward_offline({"frames": clips})        # logits [B,T,K], features [B,T,F]
    state = model.init_state(batch=1)
    logits, state = model.step({"frames": frame}, state)  # one frame, constant time

See streaming.py for the config schema. Needs torch (the runtime does not import this package).
"""

from edgeact.models.attention import AttentionHead, AttentionHeadConfig, CausalAttentionPool
from edgeact.models.convlstm import ConvLSTM, ConvLSTMHead, ConvLSTMHeadConfig
from edgeact.models.frame_encoder import FrameEncoder, RGBDifference
from edgeact.models.heads import RecurrentHead, RecurrentHeadConfig, TwoStageConfig, TwoStageHead
from edgeact.models.mobilenet_v2 import MobileNetV2Config, TSMMobileNetV2
from edgeact.models.netvlad import NetVLAD, NetVLADHead, NetVLADHeadConfig
from edgeact.models.pose import PoseConfig, PoseEncoder
from edgeact.models.pretrained import load_pretrained
from edgeact.models.recurrent import StreamingGRU, StreamingLSTM
from edgeact.models.resnet import ResNetConfig, TSMResNet
from edgeact.models.streaming import ENCODERS, HEADS, ModelConfig, StreamingModel, build_model
from edgeact.models.temporal_shift import shift_bidirectional, shift_offline, shift_step

__all__ = [
    "AttentionHead", "AttentionHeadConfig", "CausalAttentionPool", "ConvLSTM", "ConvLSTMHead", "ConvLSTMHeadConfig",
    "ENCODERS", "FrameEncoder", "HEADS", "MobileNetV2Config", "ModelConfig", "NetVLAD", "NetVLADHead",
    "NetVLADHeadConfig", "PoseConfig", "PoseEncoder", "RGBDifference", "RecurrentHead", "RecurrentHeadConfig",
    "ResNetConfig", "StreamingGRU", "StreamingLSTM", "StreamingModel", "TSMMobileNetV2", "TSMResNet",
    "TwoStageConfig", "TwoStageHead", "build_model", "load_pretrained", "shift_bidirectional",
    "shift_offline", "shift_step",
]
