import math

import numpy as np
import pytest

from s5cli.curation.selection import DiversityPool, EntropyRule, entropy_rule, kth_smallest


def chunked(values: np.ndarray, size: int):
    return lambda: (values[i : i + size] for i in range(0, len(values), size))


@pytest.mark.parametrize("bins,collect", [(4096, 65536), (4, 10), (2, 3)])
def test_kth_smallest_is_exact(bins, collect):
    rng = np.random.default_rng(bins)
    values = np.concatenate([rng.random(500), np.full(40, 0.25), rng.random(60) * 1e-9])
    rng.shuffle(values)
    ordered = np.sort(values)
    for k in (1, 2, 37, 300, 310, 599):
        t, ties = kth_smallest(chunked(values, 57), k, bins=bins, collect=collect)
        assert t == ordered[k - 1]
        assert ties == k - int((values < t).sum())
        assert 1 <= ties <= int((values == t).sum())


def test_kth_smallest_all_equal_and_all():
    values = np.full(100, 0.7)
    assert kth_smallest(chunked(values, 10), 30, bins=4, collect=5) == (0.7, 30)
    assert kth_smallest(chunked(values, 10), 100) == (math.inf, 0)


def test_entropy_rule_takes_ties_in_order_across_chunks():
    rule = EntropyRule(threshold=0.2, ties=2)
    assert rule.keep(np.array([0.3, 0.2, 0.1])).tolist() == [False, True, True]
    assert rule.keep(np.array([0.2, 0.2, 0.05])).tolist() == [True, False, True]
    rule.reset()
    assert rule.keep(np.array([0.2, 0.2, 0.2])).tolist() == [True, True, False]


def test_keep_fraction_keeps_the_most_confident():
    values = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    rule = entropy_rule(chunked(values, 3), len(values), keep_fraction=0.3, max_entropy=None)
    assert rule.keep(values).tolist() == [v in (0.0, 0.1, 0.2) for v in values]
    rule = entropy_rule(chunked(values, 3), len(values), keep_fraction=0.25, max_entropy=None)  # ceil(2.5) = 3
    assert int(rule.keep(values).sum()) == 3


def test_max_entropy_and_both():
    values = np.array([0.9, 0.1, 0.5, 0.3])
    rule = entropy_rule(chunked(values, 2), 4, keep_fraction=None, max_entropy=0.5)
    assert rule.keep(values).tolist() == [False, True, True, True]
    rule = entropy_rule(chunked(values, 2), 4, keep_fraction=0.5, max_entropy=0.2)
    assert rule.keep(values).tolist() == [False, True, False, False]


def test_diversity_expansion_hand_case():
    # classes: 0 background, 1 and 2 foreground; kept pixels 100 / 50 / 0: class 2 is under-represented
    pool = DiversityPool(num_classes=3, background=0, budget=2)
    pool.offer(10, np.array([0, 10, 5]), 0.5)
    pool.offer(11, np.array([0, 0, 8]), 0.9)
    pool.offer(12, np.array([0, 0, 8]), 0.4)  # ties with 11 on class-2 pixels, more confident
    pool.offer(13, np.array([0, 30, 0]), 0.1)
    picked, totals = pool.select(np.array([100, 50, 0]))
    assert picked == [12, 11]
    assert totals.tolist() == [100, 50, 16]


def test_diversity_stops_when_balanced_or_no_candidate():
    pool = DiversityPool(num_classes=3, background=0, budget=5)
    pool.offer(1, np.array([5, 0, 40]), 0.3)
    pool.offer(2, np.array([5, 0, 40]), 0.2)
    pool.offer(3, np.array([5, 9, 0]), 0.2)
    picked, totals = pool.select(np.array([0, 10, 0]))
    # class 2 first (0 px): row 2 (less entropy); then class 1 (10 < 50 / 2): row 3; then class 1
    # is still under (19 * 2 < 59) but has no candidate left, class 2 is not under: stop
    assert picked == [2, 3]
    assert totals.tolist() == [10, 19, 40]


def test_pool_keeps_only_budget_per_class():
    pool = DiversityPool(num_classes=2, background=0, budget=3)
    for row in range(100):
        pool.offer(row, np.array([1, row % 17 + 1]), 0.5)
    assert len(pool._heaps[1]) == 3
    picked, _ = pool.select(np.array([10, 0]))
    assert picked == [16]  # one pick brings class 1 to an equal share (single foreground class)
    assert sorted(item[0] for item in pool._heaps[1]) == [17, 17, 17]


def test_zero_budget_offers_nothing():
    pool = DiversityPool(num_classes=2, background=0, budget=0)
    pool.offer(0, np.array([0, 5]), 0.1)
    picked, totals = pool.select(np.array([1, 0]))
    assert picked == [] and totals.tolist() == [1, 0]
