import pytest
import torch

from s5cli.errors import ConfigError
from s5cli.training.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    init_distributed,
    resolve_device,
    unwrap,
    wrap_ddp,
)


def test_single_process_without_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    t = torch.tensor([2.0])
    assert float(all_reduce_sum(t, ctx)) == 2.0
    assert all_gather_objects({"a": 1}, ctx) == [{"a": 1}]
    model = torch.nn.Linear(2, 2)
    assert wrap_ddp(model, ctx) is model and unwrap(model) is model


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not auto, cpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_context_defaults() -> None:
    ctx = DistContext()
    assert ctx.device == torch.device("cpu") and ctx.backend is None
