"""Small shared utilities: atomic writes, seeding, optional dependencies."""
