"""Top-k accuracy of an image classifier, in percent (the study's unit)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric


@METRICS.register_module()
class ClassificationAccuracy(BaseMetric):
    """Top-k accuracy over the predictions' ``pred_score`` and ``gt_label``.

    Reported as ``accuracy/top<k>`` in percent.

    Args:
        topk: The k's to report.
        collect_device: As mmengine's ``BaseMetric``.
        prefix: Metric name prefix (default ``accuracy``).
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, ), collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = sample['pred_score'].float().cpu()
            k = min(max(self.topk), score.numel())
            top = score.topk(k).indices
            label = int(sample['gt_label'].view(-1)[0])
            self.results.append([bool((top[:j] == label).any()) for j in self.topk])

    def compute_metrics(self, results: List[List[bool]]) -> Dict[str, float]:
        hits = torch.tensor(results, dtype=torch.float64)
        return {f'top{k}': float(hits[:, i].mean() * 100) for i, k in enumerate(self.topk)}
