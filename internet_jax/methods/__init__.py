"""The methods; each subpackage defines `METHOD` (`internet_jax.method.Method`)."""
