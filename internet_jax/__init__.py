"""internet_jax: JAX/Flax human video synthesis (pose transfer) with INTERnet and BDMM."""

__version__ = "0.2.0"
