"""BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019): greedy batches of maximal joint mutual
information. Pure torch.

The batch score is ``I(y_1..y_n; w) = H(y_1..y_n) - Σ_i E_w H(y_i | w)``, with the ``T``
Monte-Carlo dropout samples standing in for ``w``. The greedy step adds the candidate that
maximises it. ``H(y_1..y_n, y_x)`` is computed exactly over all configurations of the batch's
labels while they are at most ``num_samples``; beyond, from about ``num_samples`` configurations
drawn afresh from the joint of the whole batch at every greedy step, as the paper's estimator (and
batchbald_redux) does: for each Monte-Carlo sample ``t``, ``num_samples // T`` configurations with
every label drawn from ``p(y | w_t)``.

Detectors have per-box samples; an image is represented by its box with the largest BALD (an
image without a box by a certain background prediction, which adds no information).
"""
from __future__ import annotations

from typing import List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from ..outputs import IMAGE_INDEX, MC_PROBS, NUM_IMAGES
from ..registry import SELECTORS
from ..scoring import functional as F
from .base import Selector

MC = 'batchbald_mc_probs'


def sample_joint(picked: Tensor, num_samples: int, generator: Optional[torch.Generator] = None
                 ) -> Tuple[Tensor, Tensor]:
    """Label configurations of a batch drawn from its joint, and their probability under each sample.

    Args:
        picked: ``[n, T, C]`` Monte-Carlo class distributions of the batch.
        num_samples: About how many configurations (``T · (num_samples // T)``, at least ``T``).
        generator: Seeded CPU generator.

    Returns:
        ``(joint [M, T], log_scale [M])``: ``P_t(configuration m) = exp(log_scale[m]) · joint[m, t]``.
    """
    n, samples_t, classes = picked.shape
    per_sample = max(1, num_samples // samples_t)
    labels = torch.multinomial(picked.reshape(n * samples_t, classes).float().cpu(), per_sample, replacement=True,
                               generator=generator).to(picked.device).reshape(n, 1, samples_t * per_sample)
    log_p = picked.clamp_min(1e-300).log()  # [n, T, C]
    log_joint = torch.gather(log_p, 2, labels.expand(n, samples_t, -1)).sum(0).T  # [M, T]
    log_scale = log_joint.amax(1)
    return (log_joint - log_scale[:, None]).exp(), log_scale


def batch_bald(mc_probs: Tensor, budget: int, candidates: Tensor, num_samples: int = 1000,
               generator: Optional[torch.Generator] = None, chunk: int = 256) -> Tensor:
    """Greedy BatchBALD.

    Args:
        mc_probs: ``[R, T, C]`` Monte-Carlo class distributions of every row.
        budget: Batch size (at most ``len(candidates)``).
        candidates: int64 rows eligible for the batch.
        num_samples: Most joint configurations kept (exact below, sampled afresh each step above).
        generator: Seeded CPU generator of the sampled configurations.
        chunk: Candidates per joint-entropy block.

    Returns:
        ``[budget]`` int64 rows in pick order.
    """
    probs = mc_probs[candidates].double()  # [N, T, C]
    num_samples_t = probs.shape[1]
    conditional = F.entropy(probs).mean(1)  # E_w H(y_x | w), [N]
    joint = probs.new_ones((1, num_samples_t))  # P_t(configuration), one row per configuration
    log_scale = probs.new_zeros(1)  # sampled rows are stored rescaled: P = exp(log_scale) * joint
    sampled = False
    available = torch.ones(probs.shape[0], dtype=torch.bool)
    picks: List[int] = []
    batch_conditional = 0.0
    for _ in range(budget):
        joint_entropy = torch.empty(probs.shape[0], dtype=torch.float64)
        for start in range(0, probs.shape[0], chunk):
            # p(config, c) = mean_t P_t(config) p_t(c | x): [n, Y, C]
            p = torch.einsum('yt,ntc->nyc', joint, probs[start:start + chunk]) / num_samples_t
            if sampled:  # configurations drawn from p(config): -1/M Σ_m Σ_c p(c | y_m) log p(y_m, c)
                log_p = torch.log(p.clamp_min(1e-300)) + log_scale[None, :, None]
                given = p / p.sum(2, keepdim=True).clamp_min(1e-300)
                joint_entropy[start:start + chunk] = -(given * log_p).sum(2).mean(1)
            else:
                joint_entropy[start:start + chunk] = -torch.special.xlogy(p, p).sum((1, 2))
        gain = joint_entropy - (batch_conditional + conditional)
        gain[~available] = -torch.inf
        best = int(gain.argmax())
        picks.append(best)
        available[best] = False
        batch_conditional += float(conditional[best])
        new = probs[best]  # [T, C]
        if not sampled and joint.shape[0] * new.shape[1] <= num_samples:
            joint = (joint[:, None, :] * new.T[None]).reshape(-1, num_samples_t)
            continue
        sampled = True  # too many configurations: draw them afresh from the joint of the whole batch
        joint, log_scale = sample_joint(probs[picks], num_samples, generator)
    return candidates[torch.tensor(picks, dtype=torch.long, device=candidates.device)]


@SELECTORS.register_module()
class BatchBALD(Selector):
    """Batches of maximal joint mutual information over Monte-Carlo dropout samples (no scorer).

    Its cost grows with the number of candidates times ``num_samples``: combine it with
    ``subset_size`` on large pools.

    Args:
        num_samples: Joint configurations kept (exact while fewer, sampled beyond).
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """
    requires = frozenset({MC_PROBS})
    uses_scores = False

    def __init__(self, num_samples: int = 1000, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_samples < 1:
            raise ValueError(f'num_samples must be positive, got {num_samples}.')
        self.num_samples = num_samples

    def image_inputs(self, outputs: Mapping) -> dict:
        mc = outputs[MC_PROBS].float().transpose(0, 1)  # [M, T, C]
        index = outputs.get(IMAGE_INDEX)
        if index is None:
            return {MC: mc}
        num = int(outputs[NUM_IMAGES])
        out = mc.new_zeros((num, ) + mc.shape[1:])
        out[..., -1] = 1  # no box: a certain background prediction
        if mc.shape[0]:
            info = F.bald(mc.transpose(0, 1))
            best = torch.full((num, ), -1.0, dtype=info.dtype).scatter_reduce(0, index, info, reduce='amax')
            is_best = info == best[index]
            rows = torch.full((num, ), mc.shape[0], dtype=torch.long).scatter_reduce(
                0, index[is_best], is_best.nonzero().squeeze(1), reduce='amin')
            has_box = rows < mc.shape[0]
            out[has_box] = mc[rows[has_box]]
        return {MC: out}

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        candidates = (~labeled).nonzero().squeeze(1)
        return batch_bald(inputs[MC], min(budget, candidates.numel()), candidates, self.num_samples, self.generator)
