"""Selection over rows spread across two gloo processes equals one-process selection, pick for pick."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmal.outputs import FEATURES
from mmal.selection import KCenterGreedy, TopK


def _cases(kept_labeled: torch.Tensor):
    gen = torch.Generator().manual_seed(0)
    num = kept_labeled.numel()
    features = torch.randn(num, 8, generator=gen)
    scores = torch.randint(0, 5, (num, ), generator=gen).float()  # many ties
    scores[7] = float('nan')
    return [
        (KCenterGreedy(seed=3), None, {FEATURES: features}, kept_labeled),
        (KCenterGreedy(seed=3), None, {FEATURES: features}, torch.zeros(num, dtype=torch.bool)),  # no centre yet
        (TopK(seed=5), scores, {}, torch.zeros(num, dtype=torch.bool)),
        (TopK(seed=5, tie_break='index'), scores, {}, torch.zeros(num, dtype=torch.bool)),
    ]


def _worker(rank: int, world: int, rendezvous: str, out: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{rendezvous}', rank=rank, world_size=world)
    num = 301
    labeled = torch.zeros(num, dtype=torch.bool)
    labeled[torch.randperm(num, generator=torch.Generator().manual_seed(1))[:30]] = True
    kept = torch.tensor([r for r in range(num) if r % 11 != 4])  # some rows were unreadable
    results = []
    for selector, scores, inputs, kept_labeled in _cases(labeled[kept]):
        ids = kept[rank::world]
        mine = torch.arange(kept.numel())[rank::world]
        picked = selector.select_sharded(40, None if scores is None else scores[mine],
                                         {k: v[mine] for k, v in inputs.items()}, kept_labeled[mine], ids, kept,
                                         kept_labeled)
        selector.reset()
        alone = kept[selector.select(40, scores, inputs, kept_labeled)]
        results.append((picked.tolist(), alone.tolist()))
    torch.save(results, f'{out}.{rank}')
    dist.destroy_process_group()


def test_sharded_top_k_and_k_center_pick_what_one_process_picks(tmp_path):
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    mp.spawn(_worker, args=(2, str(tmp_path / 'rdv'), str(tmp_path / 'out')), nprocs=2)
    ranks = [torch.load(tmp_path / f'out.{r}') for r in range(2)]
    assert ranks[0] == ranks[1]  # every rank returns the same picks
    for sharded, alone in ranks[0]:
        assert len(sharded) == 40 and sharded == alone
