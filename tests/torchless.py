"""Run Python code in a subprocess where ``import torch`` fails, as on a lean Jetson image."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Installed first in the child: any attempt to import torch (or a submodule) raises.
_BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test process")
            return None
    sys.meta_path.insert(0, _NoTorch())
    """
)


def run_without_torch(code: str, *, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` with torch unimportable; the code should end by checking sys.modules."""
    program = _BLOCK_TORCH + textwrap.dedent(code) + "\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=timeout
    )
