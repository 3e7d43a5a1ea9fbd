"""Surveys: catalogues plus lazily read galaxy records (one module per survey)."""

from astro_cl.surveys.base import Survey
from astro_cl.surveys.memory import InMemorySurvey

__all__ = ["InMemorySurvey", "Survey"]
