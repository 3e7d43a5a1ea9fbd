"""Small shared utilities: atomic writes, seeding, optional dependencies, CPU counts."""

from astro_cl.utils.cpus import available_cpus

__all__ = ["available_cpus"]
