"""INTERnet ("Intrinsic Temporal Regularization for High-resolution Human Video Synthesis":
keypoint-anchor motion with a confidence map, deformable-skip generator, confidence-modulated
temporal loss) as a `Method`: its networks (`networks.py`, `model.py`, `motion.py`, `generator.py`,
`discriminator.py`), objective (`objective.py`), inference (`renderer.py`)."""

from input_pipeline import pipeline
from internet_jax import method
from internet_jax.methods.internet import networks, objective, renderer

METHOD = method.Method(
    validate_config=objective.validate_config,
    build=networks.build,
    batch_shapes=networks.batch_shapes,
    init_params=networks.init_params,
    optimizers=objective.create_optimizers,
    loss_fn=objective.loss_fn,
    example_fn=lambda config: pipeline.frame_pair_example_fn(
        config.data, annotation_keys=networks.annotation_keys(config.model)),
    renderer=renderer.create_renderer,
    summary_images=renderer.summary_images,
    inference_groups=("g",),
    progress_metrics=("g/total", "d/total", "l1", "mean_confidence"),
    create_constants=objective.vgg_params,
    motion_field=networks.motion_field,
)
