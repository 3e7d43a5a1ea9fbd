"""Built-in surveys, registered through the same hook as third-party ones."""

from astro_cl.plugins.hookspecs import hookimpl


@hookimpl
def astro_cl_register_surveys(register):
    """Register astro_cl's own surveys."""
    from astro_cl.surveys.memory import InMemorySurvey

    register(InMemorySurvey)
    from astro_cl.surveys.ecalifa import ECALIFASurvey
    from astro_cl.surveys.image_folder import ImageFolderSurvey
    from astro_cl.surveys.manga import MaNGASurvey
    from astro_cl.surveys.pipe3d import Pipe3DSurvey
    from astro_cl.surveys.sdss import SDSSSurvey

    for cls in (ECALIFASurvey, MaNGASurvey, Pipe3DSurvey, SDSSSurvey, ImageFolderSurvey):
        register(cls)
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey

    register(SDSSMockSurvey)
    register(ECALIFAMockSurvey)
