import os
from pathlib import Path

import numpy as np
import pytest
import torch

from s5cli.errors import InputError, OutputExistsError, UntrustedFileError
from s5cli.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from s5cli_tests.models.tiny import images, tiny_model


class _Payload:
    """Pickles into a call of os.system: what a malicious checkpoint carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_same_outputs_spec_config_and_extra(tmp_path):
    model = tiny_model("a", "b", moe=True, seed=5)
    config = {"lr": 5e-5, "datasets": ["a", "b"], "root": Path("/data"), "betas": (0.9, 0.999)}
    path = save_checkpoint(tmp_path / "m.pt", model, config=config, extra={"epoch": 3, "miou": np.float64(0.5)})
    loaded, spec, rest = load_checkpoint(path)
    assert spec == model.spec
    assert rest["config"] == {"lr": 5e-5, "datasets": ["a", "b"], "root": "/data", "betas": (0.9, 0.999)}
    assert rest["extra"] == {"epoch": 3, "miou": 0.5} and type(rest["extra"]["miou"]) is float
    assert rest["format"] == "s5cli" and rest["version"] == 1 and "state_dict" not in rest
    assert not loaded.training
    x = images(1, 64)
    with torch.no_grad():
        for name in ("a", "b"):
            assert torch.equal(loaded(x, name), model(x, name))


def test_checkpoint_stores_heads_and_input_contract(tmp_path):
    model = tiny_model("a")
    ckpt = read_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    assert ckpt["spec"]["heads"][0]["classes"] == ["c0", "c1", "c2"]
    assert ckpt["spec"]["input"]["bands"] == ["red", "green", "blue"]
    assert ckpt["spec"]["preset"] == "vit-nano" and ckpt["config"] is None


def test_optimizer_state_survives_weights_only(tmp_path):
    model = tiny_model("a").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    model(images(2, 32)).mean().backward()
    optimizer.step()
    scheduler.step()
    extra = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": 1}
    ckpt = read_checkpoint(save_checkpoint(tmp_path / "m.pt", model, extra=extra))
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    fresh.load_state_dict(ckpt["extra"]["optimizer"])
    assert fresh.param_groups[0]["betas"] == (0.9, 0.99)
    state = fresh.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(state, optimizer.state_dict()["state"][0]["exp_avg"])
    assert ckpt["extra"]["scheduler"]["last_epoch"] == 1


def test_unstorable_value_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"extra\.bad"):
        save_checkpoint(tmp_path / "m.pt", tiny_model("a"), extra={"bad": object()})
    assert not (tmp_path / "m.pt").exists()


def test_existing_output_needs_overwrite(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model("a"))
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_checkpoint(path, tiny_model("b"))
    assert path.read_bytes() == before
    save_checkpoint(path, tiny_model("b"), overwrite=True)
    assert read_checkpoint(path)["spec"]["heads"][0]["name"] == "b"


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_checkpoint_is_refused_and_not_run(tmp_path, legacy):
    marker = tmp_path / "pwned"
    evil = {"format": "s5cli", "version": 1, "spec": {}, "state_dict": {}, "extra": _Payload(marker)}
    path = tmp_path / "evil.pt"
    torch.save(evil, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UntrustedFileError) as info:
        read_checkpoint(path)
    assert str(path) in info.value.message
    if not legacy:
        assert "system" in info.value.message
    with pytest.raises(UntrustedFileError):
        load_checkpoint(path)
    assert not marker.exists()


def test_bad_files_are_input_errors_naming_the_path(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(InputError, match="no such file") as info:
        read_checkpoint(missing)
    assert info.value.path == str(missing)

    text = tmp_path / "notes.pt"
    text.write_text("hello, not a checkpoint")
    with pytest.raises(InputError) as info:
        read_checkpoint(text)
    assert info.value.path == str(text) and not isinstance(info.value, UntrustedFileError)

    good = save_checkpoint(tmp_path / "good.pt", tiny_model("a"))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated") as info:
        read_checkpoint(truncated)
    assert info.value.path == str(truncated)

    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(InputError, match="not an s5cli checkpoint"):
        read_checkpoint(plain)


def test_weights_not_fitting_the_spec(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model("a"))
    ckpt = torch.load(path, weights_only=True)
    ckpt["spec"]["decoder_channels"] = 16
    torch.save(ckpt, path)
    with pytest.raises(InputError, match="do not fit the spec"):
        load_checkpoint(path)
    ckpt["spec"]["preset"] = 3
    torch.save(ckpt, path)
    with pytest.raises(InputError, match="spec is invalid at 'preset'"):
        load_checkpoint(path)
