"""scripts/gpu_check.py without a GPU: it says there is none and exits 0; the choices it makes for
CUDA (precision, JPEG decode path, device) are checked here, and every measurement runs on the CPU
at tiny sizes so that its code stays working for the day a GPU runs it."""

import importlib.util
import json
import subprocess
import sys
import types

import pytest
import torch

from conftest import REPO

SCRIPT = REPO / "scripts" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script measures instead")
def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    output = tmp_path / "gpu.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--output", str(output)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no CUDA device" in result.stdout
    report = json.loads(output.read_text())
    assert report["environment"]["cuda"] is False and "skipped" in report


def test_cuda_choices():
    gpu_check = _module()
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert gpu_check.amp_precision(cpu) == "fp32"
    assert gpu_check.amp_precision(cuda, bf16_supported=True) == "bf16"
    assert gpu_check.amp_precision(cuda, bf16_supported=False) == "fp16"
    with_nvjpeg, without = types.SimpleNamespace(decode_jpeg=lambda *a, **k: None), types.SimpleNamespace()
    assert gpu_check.decode_path(cuda, with_nvjpeg) == "gpu"
    assert gpu_check.decode_path(cuda, without) == "cpu" and gpu_check.decode_path(cpu, with_nvjpeg) == "cpu"
    if not torch.cuda.is_available():
        from modelkit.config import ConfigError

        with pytest.raises(ConfigError, match="no CUDA device"):
            gpu_check.main(["--device", "cuda"])


def test_every_measurement_runs_on_the_cpu(tmp_path):
    output = tmp_path / "gpu.json"
    assert _module().main(["--device", "cpu", "--quick", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    training = report["training"]["cpu"]
    assert training.get("steps_per_s", 0) > 0 or "skipped" in training
    for name in ("ngram", "mobilenet_v2", "video"):
        assert report["inference"][name]["cpu"]["items_per_s"] > 0, report["inference"][name]
    assert report["inference"]["jpeg_decode"]["pil_per_s"] > 0 and report["inference"]["jpeg_decode"]["path"] == "cpu"
