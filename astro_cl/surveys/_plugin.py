"""Built-in surveys, registered through the same hook as third-party ones."""

from astro_cl.plugins.hookspecs import hookimpl


@hookimpl
def astro_cl_register_surveys(register):
    """Register astro_cl's own surveys."""
    from astro_cl.surveys.memory import InMemorySurvey

    register(InMemorySurvey)
    from astro_cl.surveys.ecalifa import ECALIFASurvey

    register(ECALIFASurvey)
