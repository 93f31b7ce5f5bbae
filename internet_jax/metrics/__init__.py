"""Evaluation metrics for human video synthesis (INTERnet paper, Sec. 4.1).

Weight-free metrics live in `image` (per-frame), `temporal` and `synthetic_gt`, the choice of
D2G-Net's Robust-SSIM/PSNR test frames by pose in `poses`;
network metrics (LPIPS, FID, I3D/FVD, Super SloMo's Interp-PSNR) live in their own modules and
raise `MetricUnavailable` when their weights are absent.
"""


class MetricUnavailable(Exception):
  """A metric that cannot be computed here (e.g. missing weights); str(e) says why."""


# The synthetic data's body regions (its renderer's part names, input_pipeline/synthetic.py), by
# which `synthetic_gt.motion_epe` splits the figure-pixel EPE: whether thin, fast limbs are
# followed is what the whole-figure mean hides. Here, not in synthetic_gt, so that the CLIs' tables
# can name them without importing numpy.
BODY_REGIONS = (
    ("arms", ("upper_arm_left", "lower_arm_left", "upper_arm_right", "lower_arm_right")),
    ("legs", ("upper_leg_left", "lower_leg_left", "upper_leg_right", "lower_leg_right")),
    ("trunk", ("head", "torso", "skirt_or_hips")),
)
