"""Shared fixtures and the skip rules for GPU / TensorRT tests."""

from __future__ import annotations

import importlib.util

import pytest


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


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
