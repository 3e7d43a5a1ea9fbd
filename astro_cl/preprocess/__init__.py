"""Preprocessing: fitted transformations from raw survey data to model inputs, and the cache."""
