"""Training machinery: settings, the trainer, checkpoints and distributed data-parallel.

This layer knows nothing of the models that use it (`astro_cl.models` imports
it, never the reverse): a model hands the trainer a network and a loss, and
`TrainerConfig` holds how it is trained.
"""

from astro_cl.training.settings import TrainerConfig

__all__ = ["TrainerConfig"]
