"""Selection at pool scale: every figure measured in this one run.

    python tools/benchmarks/bench_scale.py [--sizes 50000 200000 1000000] [--selectors ...]
                                           [--limit-s 900] [--limit-gib 4]

Synthetic clustered features (D=256) and scores for N pool images, 1 % of them labeled, a budget
of 1 % of N. Each (selector, N) runs in its own process under a time and a memory limit (a run
that exceeds one is reported as such, not waited for): wall time and peak resident memory of the
whole process (inputs included). For k-center the run's memory-bandwidth bound is measured in the
same process (one read of the features per labeled chunk and per pick, at the bandwidth a read of
them reaches there) and the ratio printed. At 50k rows, faiss's neighbourhoods (TypiClust's
k-NN, ProbCover's δ-graph) are compared with the exact ones: recall and time. Finally top-k and
k-center run sharded over two gloo processes (each holding half of the rows) against one process,
at the largest N that ran. A selector named ``Name:subset_size=K`` sees the labeled rows and K
unlabeled ones, as a cycle with that ``subset_size`` would.
Targets on the 2-core machine: every selector at 1M under 15 minutes and 4 GiB; k-center within
1.5x its bound; memory linear in N. The last line is a JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..'))

DIM = 256
SELECTORS = ('TopK', 'KCenterGreedy', 'BADGE', 'TypiClust', 'ProbCover', 'ProbCover:subset_size=50000')


def data(n: int, seed: int = 0):
    """Clustered features, scores and a labeled mask of 1 % of ``n``."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(64, DIM, generator=gen) * 3
    features = centres[torch.randint(0, 64, (n, ), generator=gen)]
    features += torch.randn(n, DIM, generator=gen)
    scores = torch.rand(n, generator=gen)
    labeled = torch.zeros(n, dtype=torch.bool)
    labeled[torch.randperm(n, generator=gen)[:max(1, n // 100)]] = True
    return features, scores, labeled


def build(spec: str):
    """A selector from ``Name`` or ``Name:key=value,...`` (integer values)."""
    from mmal.registry import SELECTORS as REGISTRY
    name, _, args = spec.partition(':')
    kwargs = {key: int(value) for key, value in (item.split('=') for item in args.split(',') if item)}
    return REGISTRY.build(dict(type=name, seed=0, **kwargs))


def one(selector: str, n: int) -> dict:
    """Child process: time and peak memory of one selection (and, for k-center, its bound). A
    selector with ``subset_size`` sees the labeled rows and that many unlabeled ones, as in a cycle."""
    import torch
    from bench_selection import read_bandwidth

    from mmal.outputs import FEATURES, LAST_LAYER_INPUT, NUM_IMAGES, PROBS
    features, scores, labeled = data(n)
    budget = max(1, n // 100)
    chosen = build(selector)
    if chosen.subset_size is not None:
        candidates = torch.tensor(chosen.candidates((~labeled).nonzero()[:, 0].tolist()))
        rows = torch.cat([labeled.nonzero()[:, 0], candidates])
        features, scores, labeled = features[rows], scores[rows], labeled[rows]
    num = len(labeled)
    probs = torch.randn(num, 21, generator=torch.Generator().manual_seed(1)).softmax(1)  # (BADGE: 20 classes + bg)
    inputs = chosen.image_inputs({FEATURES: features, PROBS: probs, LAST_LAYER_INPUT: features, NUM_IMAGES: num})
    del probs
    start = time.perf_counter()
    picks = chosen.select(budget, scores if chosen.uses_scores else None, inputs, labeled)
    seconds = time.perf_counter() - start
    out = dict(selector=selector, n=n, seconds=round(seconds, 2), picks=len(picks),
               peak_gib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 3))
    if selector == 'KCenterGreedy':
        chunks = -(-int(labeled.sum()) // 256)
        bound = (chunks + budget) * features.numel() * 4 / read_bandwidth(features, repeats=5)
        out.update(bound_seconds=round(bound, 2), ratio_to_bound=round(seconds / bound, 2))
    return out


def knn_recall(approx, exact) -> float:
    """Fraction of the true k nearest neighbours an approximate list holds: a found neighbour is a
    real row at its real distance, so it is a true one when within the exact k-th distance."""
    kth = exact[:, -1:] * (1 + 1e-5) + 1e-6
    return round(float((approx <= kth).float().mean()), 4)


def recall(n: int) -> dict:
    """Child process: faiss against exact neighbourhoods on ``n`` normalised rows (as the selectors
    normalise): ProbCover's δ-graph at the δ its purity rule gives (edge recall, time of each) and
    the coverage of its picks on the exact graph; TypiClust's 20 nearest neighbours of every row, as
    for one cluster of ``n`` images (recall of the neighbour lists, time of each)."""
    import torch
    import torch.nn.functional as F

    from mmal.selection import neighbours, probcover
    features, _, labeled = data(n)
    x = F.normalize(features, dim=1)
    del features
    out: dict = dict(n=n)
    delta = probcover.estimate_delta(x, 10, 0.95, 2000, torch.Generator().manual_seed(0))
    graphs = {}
    for search in ('exact', 'faiss'):
        start = time.perf_counter()
        graphs[search] = neighbours.radius_graph(x, delta, search=search)
        out[f'graph_{search}_s'] = round(time.perf_counter() - start, 2)
    exact_ptr, exact_idx = graphs['exact']
    found = 0
    for row in range(n):  # both CSRs list each row's columns ascending
        a = exact_idx[exact_ptr[row]:exact_ptr[row + 1]]
        b = graphs['faiss'][1][graphs['faiss'][0][row]:graphs['faiss'][0][row + 1]]
        found += int(torch.isin(a, b).sum())
    out.update(delta=round(delta, 4), edges=int(exact_idx.numel()), graph_recall=round(found / exact_idx.numel(), 4))
    budget = n // 100
    for search in ('exact', 'faiss'):
        picks = probcover.greedy_cover(*graphs[search], labeled, budget, torch.Generator().manual_seed(0))
        covered = torch.zeros(n, dtype=torch.bool)
        covered[probcover.neighbours_of(exact_ptr, exact_idx, torch.cat([picks, labeled.nonzero()[:, 0]]))] = True
        out[f'coverage_{search}'] = round(float(covered.float().mean()), 4)
    del graphs
    knn = {}
    for search in ('exact', 'faiss'):
        start = time.perf_counter()
        knn[search] = neighbours.knn_sq_distances(x, 20, search=search)
        out[f'knn_{search}_s'] = round(time.perf_counter() - start, 2)
    out['knn_recall'] = knn_recall(knn['faiss'], knn['exact'])
    typ = {k: 1 / (v.mean(1) + 1e-5) for k, v in knn.items()}
    out['typicality_same_argmax'] = bool(int(typ['exact'].argmax()) == int(typ['faiss'].argmax()))
    # a harder case for the index's cells: features without cluster structure
    x = F.normalize(torch.randn(n, DIM, generator=torch.Generator().manual_seed(2)), dim=1)
    exact, approx = neighbours.knn_sq_distances(x, 20, 'exact'), neighbours.knn_sq_distances(x, 20, 'faiss')
    out['knn_recall_unclustered'] = knn_recall(approx, exact)
    return out


def _sharded_worker(rank: int, world: int, n: int, rendezvous: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from mmal.outputs import FEATURES
    from mmal.selection import KCenterGreedy, TopK
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{rendezvous}', rank=rank, world_size=world)
    features, scores, labeled = data(n)
    budget, kept = n // 100, torch.arange(n)
    times = {}
    for name, selector, inputs in (('TopK', TopK(seed=0), {}), ('KCenterGreedy', KCenterGreedy(seed=0),
                                                               {FEATURES: features[rank::world].contiguous()})):
        dist.barrier()
        start = time.perf_counter()
        selector.select_sharded(budget, scores[rank::world], inputs, labeled[rank::world], kept[rank::world], kept,
                                labeled)
        times[name] = time.perf_counter() - start
    if rank == 0:
        with open(out, 'w') as f:
            json.dump(times, f)
    dist.destroy_process_group()


def sharded(n: int) -> dict:
    """Two gloo processes of one thread each, against one process of two threads (same rows)."""
    import tempfile

    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_sharded_worker, args=(2, n, os.path.join(tmp, 'rdv'), os.path.join(tmp, 'out')), nprocs=2)
        with open(os.path.join(tmp, 'out')) as f:
            return json.load(f)


def matvec_check(n: int = 200_000) -> dict:
    """The per-pick product of the greedy selectors, ``torch.mv`` against the product with a two-row
    matrix, and a plain read of the same features (ms, best of 10)."""
    import torch
    from bench_selection import best_time
    x = torch.randn(n, DIM)
    v = x[0].clone()
    pair = torch.zeros(2, DIM)
    pair[0] = v
    out = dict(read_ms=best_time(lambda: x.sum(), 10) * 1e3, mv_ms=best_time(lambda: torch.mv(x, v), 10) * 1e3,
               two_row_ms=best_time(lambda: (x @ pair.T)[:, 0], 10) * 1e3)
    print(f'x @ v on {n:,} x {DIM}: torch.mv {out["mv_ms"]:.1f} ms, two-row product {out["two_row_ms"]:.1f} ms, '
          f'a plain read {out["read_ms"]:.1f} ms', flush=True)
    return out


def run_child(args: list, limit_s: float, limit_gib: float) -> dict:
    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (int(limit_gib * 2 ** 30) * 2, ) * 2)  # (virtual: allocator slack)

    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=limit_s,
                              preexec_fn=limits)
    except subprocess.TimeoutExpired:
        return dict(error=f'over the {limit_s:.0f} s limit')
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ['?'])[-1]
        return dict(error=f'failed after {time.perf_counter() - start:.0f} s: {last[:200]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[50_000, 200_000, 1_000_000])
    parser.add_argument('--selectors', nargs='+', default=list(SELECTORS))
    parser.add_argument('--limit-s', type=float, default=900.0, help='time limit of one selection')
    parser.add_argument('--limit-gib', type=float, default=4.0, help='memory target of one selection')
    parser.add_argument('--child', nargs=2, help=argparse.SUPPRESS)
    parser.add_argument('--sharded', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--recall', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--recall-n', type=int, default=50_000, help='rows of the faiss recall check (0: skip)')
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child[0], int(args.child[1]))))
        return
    if args.sharded:
        print(json.dumps(sharded(args.sharded)))
        return
    if args.recall:
        print(json.dumps(recall(args.recall)))
        return
    figures: dict = dict(runs=[], matvec=matvec_check())
    if args.recall_n:
        figures['recall'] = got = run_child(['--recall', str(args.recall_n)], args.limit_s, args.limit_gib * 2)
        if 'error' in got:
            print(f'faiss recall at N={args.recall_n:,}: {got["error"]}', flush=True)
        else:
            print(f'faiss at N={got["n"]:,}: ProbCover graph (delta {got["delta"]}, {got["edges"]:,} edges) '
                  f'recall {got["graph_recall"]:.4f}, {got["graph_faiss_s"]:.1f} s against {got["graph_exact_s"]:.1f} '
                  f's exact; coverage of its picks {got["coverage_faiss"]:.4f} against {got["coverage_exact"]:.4f}; '
                  f'20-NN recall {got["knn_recall"]:.4f}, {got["knn_faiss_s"]:.1f} s against '
                  f'{got["knn_exact_s"]:.1f} s exact (most typical row the same: {got["typicality_same_argmax"]}); '
                  f'20-NN recall on unclustered features {got["knn_recall_unclustered"]:.4f}', flush=True)
    for n in args.sizes:
        for selector in args.selectors:
            result = run_child(['--child', selector, str(n)], args.limit_s, args.limit_gib)
            result.update(selector=selector, n=n)
            figures['runs'].append(result)
            if 'error' in result:
                print(f'{selector:14s} N={n:>9,}: {result["error"]}', flush=True)
                continue
            over = '' if result['seconds'] <= 900 and result['peak_gib'] <= args.limit_gib else '  (misses the target)'
            bound = (f', bound {result["bound_seconds"]:.1f} s ({result["ratio_to_bound"]:.2f}x)'
                     if 'bound_seconds' in result else '')
            print(f'{selector:14s} N={n:>9,}: {result["seconds"]:8.1f} s, peak {result["peak_gib"]:.2f} GiB'
                  f'{bound}{over}', flush=True)
    ran = [r for r in figures['runs'] if 'error' not in r and r['selector'] in ('TopK', 'KCenterGreedy')]
    if ran:
        n = max(r['n'] for r in ran)
        two = run_child(['--sharded', str(n)], args.limit_s * 2, args.limit_gib * 2)
        for name in ('TopK', 'KCenterGreedy'):
            alone = next((r['seconds'] for r in ran if r['selector'] == name and r['n'] == n), None)
            if alone is not None and name in two:
                print(f'{name} N={n:,} sharded over 2 processes: {two[name]:.1f} s against {alone:.1f} s in one '
                      f'({alone / two[name]:.2f}x)', flush=True)
        figures['sharded'] = dict(n=n, **two)
    print(json.dumps(figures))


if __name__ == '__main__':
    main()
