"""Evaluation metrics for human video synthesis (INTERnet paper, Sec. 4.1).

Weight-free metrics live in `image` (per-frame), `temporal` and `synthetic_gt`;
network metrics (LPIPS, FID, I3D/FVD, Super SloMo's Interp-PSNR) live in their own modules and
raise `MetricUnavailable` when their weights are absent.
"""


class MetricUnavailable(Exception):
  """A metric that cannot be computed here (e.g. missing weights); str(e) says why."""
