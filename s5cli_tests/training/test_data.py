import numpy as np
import torch
from torch.utils.data import Dataset

from s5cli.training.data import InfiniteLoader, ResumableSampler


class Keys(Dataset):
    """Returns its index and one random draw from the key's seed."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        return {"index": torch.tensor(key[0]), "draw": torch.tensor(np.random.default_rng(key[1]).random())}


def test_sampler_is_a_function_of_seed_and_epoch() -> None:
    a, b = ResumableSampler(10, 2, seed=3), ResumableSampler(10, 2, seed=3)
    a.set_position(1)
    b.set_position(1)
    assert list(a) == list(b)
    b.set_position(2)
    assert [k[0] for k in a] != [k[0] for k in b]
    assert sorted(k[0] for k in a) == list(range(10))


def test_sampler_shards_ranks_like_distributed_sampler() -> None:
    ranks = [ResumableSampler(7, 2, seed=0, rank=r, world_size=2) for r in range(2)]
    keys = [list(s) for s in ranks]
    assert len(keys[0]) == len(keys[1]) == 4  # 7 padded to 8 (a multiple of the world size)
    seeds = {k[1] for ks in keys for k in ks}
    assert len(seeds) == 8  # every draw gets its own seed
    assert set(range(7)) <= {k[0] for ks in keys for k in ks}


def test_small_dataset_is_repeated_to_a_full_batch() -> None:
    s = ResumableSampler(3, 8, seed=0)
    keys = list(s)
    assert len(keys) == 8 and set(k[0] for k in keys) == {0, 1, 2}


def test_sampler_resumes_mid_epoch() -> None:
    full = list(ResumableSampler(9, 3, seed=5))
    s = ResumableSampler(9, 3, seed=5)
    s.set_position(0, start=6)
    assert list(s) == full[6:] and len(s) == 3


def test_infinite_loader_resume_continues_the_stream() -> None:
    ds = Keys(5)
    ref = InfiniteLoader(ds, 2, seed=1)
    batches = [next(ref) for _ in range(7)]  # crosses epoch boundaries (2 batches per epoch)
    cut = InfiniteLoader(ds, 2, seed=1)
    for _ in range(3):
        next(cut)
    state = cut.state_dict()
    assert state == {"epoch": 1, "offset": 1}
    resumed = InfiniteLoader(ds, 2, seed=1)
    resumed.load_state_dict(state)
    rest = [next(resumed) for _ in range(4)]
    for got, want in zip(rest, batches[3:]):
        assert torch.equal(got["index"], want["index"]) and torch.equal(got["draw"], want["draw"])


def test_workers_do_not_change_the_batches() -> None:
    ds = Keys(6)
    plain = InfiniteLoader(ds, 3, seed=2)
    workers = InfiniteLoader(ds, 3, seed=2, num_workers=2)
    for _ in range(3):
        a, b = next(plain), next(workers)
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["draw"], b["draw"])


def test_loader_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    loader = InfiniteLoader(Keys(4), 2, seed=0)
    for _ in range(5):
        next(loader)
    assert torch.equal(torch.rand(3), expected)
