"""Built-in downstream tasks, registered through the same hook as third-party ones."""

from astro_cl.plugins.hookspecs import hookimpl


@hookimpl
def astro_cl_register_tasks(register):
    """Register astro_cl's own downstream tasks."""
    from astro_cl.tasks.clustering import SFMSClustering
    from astro_cl.tasks.correlation import PropertyCorrelation
    from astro_cl.tasks.environment import EnvironmentTest
    from astro_cl.tasks.maps import MapMetrics
    from astro_cl.tasks.region_search import RegionSearch
    from astro_cl.tasks.regression import PropertyRegression
    from astro_cl.tasks.similarity import SimilaritySearch

    for cls in (PropertyCorrelation, SFMSClustering, EnvironmentTest, SimilaritySearch,
                PropertyRegression, MapMetrics, RegionSearch):
        register(cls)
