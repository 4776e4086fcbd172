import pytest
import torch

from s5cli.errors import ConfigError
from s5cli.training.device import cpu_has_native_bf16, resolve_precision


def test_cpu_modes() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("off", cpu).dtype is None
    assert resolve_precision("bf16", cpu).dtype == torch.bfloat16
    auto = resolve_precision("auto", cpu)
    assert auto.dtype == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert not auto.use_scaler and not auto.make_scaler().is_enabled()
    with pytest.raises(ConfigError, match="fp16"):
        resolve_precision("fp16", cpu)


def test_autocast_context_applies_the_dtype() -> None:
    prec = resolve_precision("bf16", torch.device("cpu"))
    with prec.autocast():
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.bfloat16 and prec.name == "bf16"
    with resolve_precision("off", torch.device("cpu")).autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_cuda_auto_is_fp16_with_scaler() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    prec = resolve_precision("auto", torch.device("cuda"))
    assert prec.dtype == torch.float16 and prec.use_scaler
