import pytest
import torch

from s5cli.errors import InputError
from s5cli.models.ffn import DenseFFN, PartialExpertFFN
from s5cli.models.moe import export_dense, upcycle
from s5cli.models.network import build_model
from s5cli.models.spec import HeadSpec
from s5cli_tests.models.tiny import heads, images, randomise, tiny_model

DATASETS = ["vaihingen", "potsdam", "loveda"]


def test_partial_expert_ffn_concatenates_shared_and_expert():
    torch.manual_seed(0)
    ffn = PartialExpertFFN(8, 32, expert_width=3, num_experts=2)
    x = torch.randn(2, 4, 8)
    h = torch.nn.functional.gelu(ffn.fc1(x))
    for k in range(2):
        expected = torch.cat([ffn.fc2(h), ffn.experts[k](h)], dim=-1)
        torch.testing.assert_close(ffn(x, k), expected)
    assert ffn.fc2.out_features == 5 and ffn.experts[1].out_features == 3


def test_upcycle_and_to_dense_are_inverse_on_the_ffn():
    torch.manual_seed(0)
    dense = DenseFFN(8, 32)
    moe = PartialExpertFFN(8, 32, expert_width=3, num_experts=2)
    moe.load_dense(dense)
    x = torch.randn(2, 4, 8)
    for k in range(2):
        torch.testing.assert_close(moe(x, k), dense(x))
        back = moe.to_dense(k)
        assert torch.equal(back.fc2.weight, dense.fc2.weight) and torch.equal(back.fc2.bias, dense.fc2.bias)


def test_upcycled_moe_equals_dense_for_every_dataset():
    dense = tiny_model("isaid", seed=1)
    moe = upcycle(dense, heads(*DATASETS)).eval()  # same 3 classes as the dense head: heads copied
    assert moe.spec.moe and moe.head_names == DATASETS
    x = images(2, 64)
    with torch.no_grad():
        reference = dense(x)
        for name in DATASETS:
            torch.testing.assert_close(moe(x, name), reference, rtol=1e-5, atol=1e-6)


def test_upcycle_copies_decoders_but_not_mismatched_classifiers():
    dense = tiny_model("isaid", seed=2)
    new = [HeadSpec(name="loveda", classes=[f"k{i}" for i in range(7)])]
    moe = upcycle(dense, new).eval()
    x = images(1, 64)
    with torch.no_grad():
        for a, b in zip(dense.features(x), moe.features(x, "loveda")):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        src, dst = dense.heads["isaid"].decoder.state_dict(), moe.heads["loveda"].decoder.state_dict()
        assert all(torch.equal(src[k], dst[k]) for k in src)
    assert moe(x, "loveda").shape == (1, 7, 64, 64)


def test_upcycle_refuses_a_moe_model():
    with pytest.raises(InputError, match="already has MoE"):
        upcycle(tiny_model("a", "b", moe=True))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_routing_isolation_one_step_on_a_leaves_b_untouched():
    model = tiny_model("a", "b", moe=True).train()
    experts_b = [_snapshot(block.mlp.experts[1]) for block in model.backbone.blocks]
    experts_a = [_snapshot(block.mlp.experts[0]) for block in model.backbone.blocks]
    head_b, shared = _snapshot(model.heads["b"]), _snapshot(model.backbone.blocks[0].mlp.fc2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.05)
    target = torch.randint(0, 3, (2, 64, 64))
    loss = torch.nn.functional.cross_entropy(model(images(2, 64), "a"), target)
    loss.backward()
    optimizer.step()
    for block, before_b, before_a in zip(model.backbone.blocks, experts_b, experts_a):
        after_b, after_a = block.mlp.experts[1].state_dict(), block.mlp.experts[0].state_dict()
        assert all(torch.equal(after_b[k], before_b[k]) for k in before_b)
        assert not all(torch.equal(after_a[k], before_a[k]) for k in before_a)
    after_head = model.heads["b"].state_dict()
    assert all(torch.equal(after_head[k], head_b[k]) for k in head_b)  # weights and BatchNorm statistics
    assert not torch.equal(model.backbone.blocks[0].mlp.fc2.weight, shared["weight"])


def test_export_dense_equals_moe_on_that_dataset():
    model = tiny_model(*DATASETS, moe=True, seed=3)  # randomised: every expert and head differs
    x = images(2, 64)
    with torch.no_grad():
        for name in DATASETS:
            dense = export_dense(model, name).eval()
            assert not dense.spec.moe and dense.head_names == [name]
            assert isinstance(dense.backbone.blocks[0].mlp, DenseFFN)
            torch.testing.assert_close(dense(x), model(x, name), rtol=1e-5, atol=1e-5)
        outputs = [model(x, n) for n in DATASETS]
    assert not torch.allclose(outputs[0], outputs[1])  # the experts really differ


def test_export_dense_of_a_multi_head_dense_model_keeps_one_head():
    model = tiny_model("a", "b", seed=4)
    dense = export_dense(model, "b").eval()
    with torch.no_grad():
        torch.testing.assert_close(dense(images(1, 64)), model(images(1, 64), "b"))


def test_moe_needs_a_dataset_when_it_has_several():
    model = tiny_model("a", "b", moe=True)
    with pytest.raises(InputError, match="several heads"):
        model(images(1, 64))
    assert model.expert_index("b") == 1


def test_moe_model_parameter_layout():
    model = build_model(randomise(tiny_model("a", "b", moe=True)).spec)
    mlp = model.backbone.blocks[0].mlp
    assert mlp.fc2.weight.shape == (64 - 16, 256) and len(mlp.experts) == 2
    assert mlp.experts[0].weight.shape == (16, 256)
