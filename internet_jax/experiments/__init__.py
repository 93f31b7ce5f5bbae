"""Experiment runners that train and evaluate grids of configs (`python -m internet_jax.experiments.<name>`)."""
