"""Training machinery: the trainer, checkpoints and distributed data-parallel."""
