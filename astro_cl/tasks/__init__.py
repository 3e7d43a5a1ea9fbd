"""Downstream tasks: analyses of embeddings and predicted maps against catalogues.

Every task follows the scikit-learn conventions of `~astro_cl.base.Component`
and is registered under its ``name``:

* ``"property-correlation"``: `PropertyCorrelation` (with `compare_with_study`
  and `compare_rankings`);
* ``"sfms-clustering"``: `SFMSClustering` (with `fit_main_sequence`, `sfms_classes`);
* ``"environment"``: `EnvironmentTest`;
* ``"similarity-search"``: `SimilaritySearch`;
* ``"property-regression"``: `PropertyRegression`;
* ``"map-metrics"``: `MapMetrics`.

None of them imports torch.
"""

from astro_cl.tasks.base import DownstreamTask
from astro_cl.tasks.clustering import (
    SFMS_CLASSES,
    SFMSClustering,
    cluster_purity,
    fit_main_sequence,
    sfms_classes,
)
from astro_cl.tasks.correlation import (
    STUDY_ORDER,
    PropertyCorrelation,
    compare_rankings,
    compare_with_study,
    project_2d,
)
from astro_cl.tasks.environment import EnvironmentTest, permutation_energy_test
from astro_cl.tasks.maps import PICASSSO_REFERENCE, MapMetrics, fit_ellipses, stack_maps
from astro_cl.tasks.regression import PropertyRegression
from astro_cl.tasks.similarity import SimilaritySearch, faiss_available

__all__ = [
    "PICASSSO_REFERENCE",
    "SFMS_CLASSES",
    "STUDY_ORDER",
    "DownstreamTask",
    "EnvironmentTest",
    "MapMetrics",
    "PropertyCorrelation",
    "PropertyRegression",
    "SFMSClustering",
    "SimilaritySearch",
    "cluster_purity",
    "compare_rankings",
    "compare_with_study",
    "faiss_available",
    "fit_ellipses",
    "fit_main_sequence",
    "permutation_energy_test",
    "project_2d",
    "sfms_classes",
    "stack_maps",
]
