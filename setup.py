"""internet_jax: JAX/Flax human video synthesis (INTERnet, later BDMM and D2G-Net)."""
import setuptools

setuptools.setup(
    name="internet_jax",
    version="0.1.0",
    description="JAX/Flax human video synthesis: INTERnet with intrinsic temporal regularization",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # jax 0.11+ needs Python >= 3.12; on 3.11 pip resolves jax 0.10.2. Both are admitted.
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["internet_jax*", "input_pipeline*", "configs*"]),
    install_requires=[
        "jax>=0.10.2,<0.12",
        "flax>=0.12.8,<0.14",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "grain>=0.2.18",
        "tensorflow-datasets>=4.9.10",
        "array-record>=0.8",
        "numpy>=2.0",
        "ml-collections>=1.1",
        "clu>=0.0.12",
        # clu.metric_writers (TensorBoard event files) imports TensorFlow; DESIGN §3 accepts it.
        "tensorflow-cpu>=2.21",
        "tensorboard>=2.21",
        "absl-py>=2.1",
        "opencv-python-headless>=4.10",
        "imageio>=2.37",
        "imageio-ffmpeg>=0.6",
        "av>=14",
        "dm-pix>=0.4.4",
        "pillow>=10",
        "scipy>=1.13",
        "safetensors>=0.4",
        "tqdm>=4.66",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "scikit-image>=0.24",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
        ],
    },
)
