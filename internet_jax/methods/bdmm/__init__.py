"""BDMM ("Bidirectionally Deformable Motion Modulation for Video-based Human Pose Transfer":
StyleGAN2-style decoder with deformable motion modulation, bidirectional propagation of warped
reference features, spatial and temporal discriminators) as a `Method`: networks
(`generator.py`, `discriminators.py`), the frame scans (`propagation.py`), inputs
(`inputs.py`), objective and chunked training (`objective.py`), inference over videos
(`renderer.py`), panels (`summaries.py`)."""

from internet_jax import method
from internet_jax.methods.bdmm import inputs, objective, renderer, summaries

METHOD = method.Method(
    validate_config=objective.validate_config,
    build=objective.build,
    batch_shapes=inputs.clip_batch_shapes,
    init_params=objective.init_params,
    optimizers=objective.create_optimizers,
    loss_fn=None,
    example_fn=inputs.clip_example_fn,
    renderer=renderer.create_renderer,
    summary_images=summaries.summary_images,
    inference_groups=("g",),
    progress_metrics=("g/loss", "d/loss", "g/l1"),
    create_constants=objective.create_constants,
    chunks=objective.CHUNKS,
)
