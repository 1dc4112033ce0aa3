"""Shared fixtures and the skip rules for GPU / TensorRT tests."""

from __future__ import annotations

import importlib.util

import pytest


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    # The test models are tiny: a second OpenMP thread buys nothing and, when the cores are
    # shared, its spin-waiting made convolutions 10-100x slower (CPU time, not just wall time).
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    has_trt = importlib.util.find_spec("tensorrt") is not None
    has_gpu = _has_cuda()
    skip_trt = pytest.mark.skip(reason="the real TensorRT Python package is not installed here")
    skip_gpu = pytest.mark.skip(reason="no CUDA GPU is visible (torch.cuda.is_available() is False)")
    for item in items:
        if "tensorrt" in item.keywords and not has_trt:
            item.add_marker(skip_trt)
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


# ---------------------------------------------------------------------------------------------
# Small deployable models (random but confident weights), their ONNX exports and a small
# synthetic dataset, shared by the runtime tests.
def _synth_student_models() -> dict[str, dict]:
    """kind -> the student model section of each configs/synth_*.yaml (what the parity tests run)."""
    import pathlib

    import yaml

    configs = pathlib.Path(__file__).resolve().parent.parent / "configs"
    kinds = {"pose": "synth_pose", "rgb": "synth_rgb", "fusion": "synth_fusion", "gru": "synth_gru_selfkd"}
    return {kind: yaml.safe_load((configs / f"{name}.yaml").read_text())["student"]["model"]
            for kind, name in kinds.items()}


TINY_MODELS = _synth_student_models()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    from edgeact.data.synth import CLASS_NAMES, generate

    return generate(tmp_path_factory.mktemp("synth") / "ds", len(CLASS_NAMES), seed=3, size=64,
                    frame_range=(24, 40), workers=1)


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory, synth_dir):
    """kind -> {"pt": checkpoint path, "onnx": exported path} for every TINY_MODELS kind."""
    import torch

    from edgeact.checkpoint import save_checkpoint
    from edgeact.data import open_dataset
    from edgeact.export import export_onnx
    from edgeact.models import build_model

    dataset = open_dataset(synth_dir)
    root = tmp_path_factory.mktemp("models")
    artifacts = {}
    for i, (kind, cfg) in enumerate(TINY_MODELS.items()):
        torch.manual_seed(i)
        model = build_model(cfg).eval()
        with torch.no_grad():  # spread the untrained logits so top-1 and decisions are not ties
            for name, module in model.head.named_modules():
                if name.startswith("classifier"):
                    module.weight.mul_(25.0)
        pt = save_checkpoint(root / f"{kind}.pt", model, dataset.classes)
        onnx_path = export_onnx(pt, root / f"{kind}.onnx", verify_steps=4).path
        artifacts[kind] = {"pt": pt, "onnx": onnx_path}
    return artifacts
