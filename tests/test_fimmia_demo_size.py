"""The demo's FiMMIA subset: balanced, seeded by ids (not file order), and the whole set when small."""

from __future__ import annotations

from mmia.data.schema import Dataset, Sample
from mmia.fimmia.demo_step import balanced_subset


def _ds(order):
    samples = [Sample(id=f"s{i}", row=k + 1, text=f"t{i}", label=int(i < 30)) for k, i in enumerate(order)]
    return Dataset("x.jsonl", samples, [])


def test_balanced_seeded_and_order_free():
    ds = _ds(range(100))  # 30 members, 70 non-members
    sub = balanced_subset(ds, 40, seed=0)
    assert sub.n_members == 20 and sub.n_nonmembers == 20
    again = balanced_subset(_ds(reversed(range(100))), 40, seed=0)
    assert set(again.ids) == set(sub.ids)
    assert set(balanced_subset(ds, 40, seed=1).ids) != set(sub.ids)
    assert balanced_subset(ds, 100, seed=0) is ds
