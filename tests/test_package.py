"""The package imports without torch, exposes its version, and its CLI answers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import edgeact
from tests.torchless import run_without_torch


def test_blocker_really_blocks_torch():
    # Guard against a test that cannot fail: the blocker must make `import torch` fail.
    result = run_without_torch("import torch")
    assert result.returncode != 0
    assert "torch is blocked in this test process" in result.stderr


def test_import_without_torch():
    result = run_without_torch(
        """
        import edgeact
        from edgeact import Predictor, Prediction, InputError
        import edgeact.data
        import edgeact.cli
        assert edgeact.__version__
        """
    )
    assert result.returncode == 0, result.stderr


def test_cli_help_without_torch():
    result = run_without_torch(
        """
        from edgeact.cli import main
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0
        """
    )
    assert result.returncode == 0, result.stderr
    assert "usage: edgeact" in result.stdout


def test_version_matches_compiled_module():
    from edgeact import _C

    assert _C.__version__ == edgeact.__version__


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="module 'edgeact' has no attribute 'Predicter'"):
        edgeact.Predicter  # noqa: B018


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeact", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_version():
    result = _cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"edgeact {edgeact.__version__}"


@pytest.mark.parametrize("command", [(), ("info",), ("data",), ("data", "synth")])
def test_cli_help_on_each_command(command):
    result = _cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: edgeact {' '.join(command)}".rstrip())


def test_cli_requires_a_command():
    result = _cli()
    assert result.returncode == 2
    assert "the following arguments are required: COMMAND" in result.stderr


def test_cli_info_reports_build():
    result = _cli("info")
    assert result.returncode == 0, result.stderr
    assert "_C.simd:" in result.stdout
    from importlib import metadata

    for name, extra in (("numpy", ""), ("onnxruntime", ""), ("onnx", ""), ("torch", " [train, export, torch backend]")):
        assert f"  {name}: {metadata.version(name)}{extra}\n" in result.stdout
    try:
        tensorrt = metadata.version("tensorrt")
    except metadata.PackageNotFoundError:
        tensorrt = "not installed"
    assert f"  tensorrt: {tensorrt} [tensorrt]\n" in result.stdout
    assert "onnxruntime providers: " in result.stdout and "CPUExecutionProvider" in result.stdout


def test_predictor_runs_onnx_without_torch(tiny_artifacts):
    result = run_without_torch(
        f"""
        import numpy as np
        from edgeact import Predictor
        with Predictor({str(tiny_artifacts["rgb"]["onnx"])!r}) as p:
            pred = p.push(np.zeros((48, 80, 3), np.uint8))
            assert p.backend == "onnxruntime" and pred.frames_seen == 1
        """
    )
    assert result.returncode == 0, result.stderr


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_every_declared_dependency_and_readme_installs_through_it():
    """A dependency added to pyproject.toml without a locked version would reach CI and users
    as whatever is newest that day; README's commands and .ci/run must install from the lock."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())
    declared = list(project["build-system"]["requires"]) + list(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        declared += extra
    names = {_normalised(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in declared} - {"edgeact"}
    locked = {}
    for line in (root / ".ci" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            locked[_normalised(name)] = version
    optional_hardware = {"tensorrt", "cuda-python"}  # not installable on the machines CI runs on
    assert names - optional_hardware - set(locked) == set()
    assert locked["torch"] == "2.13.0" and locked["pip"]
    readme = (root / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2
    for command in commands:
        assert "pip install -c .ci/constraints.txt torch==2.13.0" in command
        assert 'pip install -c .ci/constraints.txt --build-constraint .ci/constraints.txt -e ".[dev]"' in command
    ci = (root / ".ci" / "run").read_text()
    assert 'pins=(-c "$lock")' in ci and 'build_pins=(--build-constraint "$lock")' in ci
