"""
Scaling out: many processes, caching and GPUs
=============================================

The same configuration file trains on a laptop, on all cores of a node, or on
several GPUs. This page is not executed when the documentation is built (it
starts processes); run it from the repository root.

1. One configuration
--------------------
A run is one TOML file (see ``examples/configs``): survey, preprocessing,
augmentations, model, optimiser and training. The command line overrides any
field with ``--set section.key=value``::

    astro-cl train examples/configs/ecalifa_simclr.toml \\
        --set survey.name=ecalifa-mock --set survey.n=512 --set training.epochs=2

2. The preprocessing cache
--------------------------
With a ``[preprocess]`` table, ``astro-cl train`` fits the preprocessor and
stores the preprocessed tensors in ``<checkpoint_dir>/cache`` as memory-mapped
``.npy`` files (`~astro_cl.preprocess.PreprocessedCache`). The key covers the
survey parameters, the preprocessing configuration and the SHA-256 of every
source file, so a changed file or setting rebuilds the entry and an
unchanged one is reused: only the first run reads FITS. For surveys of
thousands of cubes, ``PreprocessedCache(directory, checksum="stat")`` keys on
file sizes and modification times instead of content.

3. Many processes with torchrun
-------------------------------
Training is data-parallel through ``torch.distributed``: each process takes a
shard of every batch; contrastive embeddings are gathered over all processes
so that the NT-Xent negatives are the global batch, and batch norm is
synchronised, so that N processes train the same model as one (the test suite
checks this with 2 CPU processes). On CPU the backend is gloo::

    torchrun --standalone --nproc_per_node=2 -m astro_cl.cli train \\
        examples/configs/ecalifa_simclr.toml --set survey.name=ecalifa-mock

Each process gets ``cores / nproc_per_node`` threads by default. Rank 0 writes
the checkpoints and the final model.

4. GPUs
-------
Install the CUDA build of PyTorch (``pip install torch``). The device is
chosen automatically (``device=None``: CUDA when available) and the backend
becomes NCCL. One process per GPU::

    torchrun --standalone --nproc_per_node=4 -m astro_cl.cli train CONFIG.toml \\
        --set training.bf16=true

``bf16=true`` uses bfloat16 autocast on GPUs that support it. Augmentations
run on the GPU with the batch (they are batched tensor operations with an
explicit generator), so the input pipeline is a memory-mapped read plus a
host-to-device copy. Interrupted runs resume bit-for-bit with ``--resume``.

5. The same from Python
-----------------------
The script below is what ``astro-cl train`` does; saved as ``train.py`` it
runs under ``python train.py`` or ``torchrun --nproc_per_node=2 train.py``.
"""

import tempfile
from pathlib import Path

from astro_cl.training.config import load_config, train_from_config

config_text = """
[survey]
name = "sdss-mock"
n = 64
size = 32

[preprocess]
name = "image-scaler"

[[augment.steps]]
name = "random-rot90"

[[augment.steps]]
name = "random-flip"

[model]
name = "simclr"
width = 0.25

[training]
epochs = 2
batch_size = 32
progress = false
checkpoint_dir = "{run}"
output = "{run}/model.pt"
"""

run = Path(tempfile.mkdtemp()) / "run"
config_path = run.parent / "simclr.toml"
config_path.write_text(config_text.format(run=run.as_posix()))
encoder = train_from_config(load_config(config_path))
print(encoder.history_[-1])
print(sorted(p.name for p in run.iterdir()))
