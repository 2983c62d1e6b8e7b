from setuptools import find_packages, setup

setup(
    name="gpt1_tf",
    version="0.1.0",
    description="OpenAI's GPT-1 fine-tuning (finetune-transformer-lm) on TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # only gpt1_tf: the top-level datasets/ folder is the original's layout, not an installed module
    packages=find_packages(include=["gpt1_tf", "gpt1_tf.*"]),
    package_data={"gpt1_tf": ["data/vocab/*"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorboard",  # tf.summary scalars (a dependency of the tensorflow wheel itself)
        "numpy",
        "scikit-learn",
        "scipy",  # Pearson and Spearman (STS-B); also a dependency of scikit-learn
        "joblib",
        "tqdm",
        "ftfy",
        "spacy>=3.0",
        "safetensors",  # HuggingFace checkpoints in and out, through its NumPy API (no torch)
        "matplotlib",  # the learning curves' PNG (--analysis, analysis.py), imported only when drawing
    ],
    extras_require={"test": ["pytest", "hypothesis"]},
    entry_points={"console_scripts": ["gpt1-train=gpt1_tf.cli.train:main", "gpt1-export=gpt1_tf.cli.export:main"]},
)
