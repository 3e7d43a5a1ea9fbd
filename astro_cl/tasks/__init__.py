"""Downstream tasks: analyses of embeddings and predicted maps against catalogues.

Every task follows one contract, `DownstreamTask`: ``fit(data, reference)``
returns ``self``, ``result()`` gives the result, ``evaluate`` is the base's;
optional hooks add per-galaxy columns, tables, facts, figures and headline
rows to a study's results folder and report (`TaskOutputs`), for built-in and
third-party tasks alike. Tasks comparing predicted with true maps derive from
`MapTask`. Each is registered under its ``name``:

* ``"property-correlation"``: `PropertyCorrelation` (with `compare_with_study`
  and `compare_rankings`);
* ``"sfms-clustering"``: `SFMSClustering` (with `fit_main_sequence`, `sfms_classes`);
* ``"environment"``: `EnvironmentTest`;
* ``"similarity-search"``: `SimilaritySearch`;
* ``"property-regression"``: `PropertyRegression`;
* ``"map-metrics"``: `MapMetrics`;
* ``"region-search"``: `RegionSearch` (resolved embeddings; with
  `truth_regimes` and `region_precision` to score it on mocks).

`astro_cl.tasks.alignment` scores cube <-> image alignment (retrieval and
zero-shot probes of `~astro_cl.models.clip.CLIPEncoder`).

`astro_cl.tasks.catalogue` holds what they share: aligning embeddings with
catalogues, reading columns, and deciding which columns are physical
properties (`property_columns`; positions, angles, distances, identifiers and
flags are left out by default). `embedding_diagnostics` says whether an
embedding collapsed. None of them imports torch.
"""

from astro_cl.tasks.base import DownstreamTask, TaskOutputs
from astro_cl.tasks.catalogue import column_role, left_out_columns, property_columns
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
from astro_cl.tasks.diagnostics import embedding_diagnostics
from astro_cl.tasks.environment import EnvironmentTest, auto_permutations, permutation_energy_test
from astro_cl.tasks.maps import (
    DERIVED_MAPS,
    PICASSSO_REFERENCE,
    MapMetrics,
    MapTask,
    fit_ellipses,
    stack_maps,
)
from astro_cl.tasks.region_search import RegionSearch, region_precision, truth_regimes
from astro_cl.tasks.regression import PropertyRegression
from astro_cl.tasks.similarity import SimilaritySearch, faiss_available

__all__ = [
    "DERIVED_MAPS",
    "PICASSSO_REFERENCE",
    "SFMS_CLASSES",
    "STUDY_ORDER",
    "DownstreamTask",
    "EnvironmentTest",
    "MapMetrics",
    "MapTask",
    "PropertyCorrelation",
    "PropertyRegression",
    "RegionSearch",
    "SFMSClustering",
    "SimilaritySearch",
    "TaskOutputs",
    "auto_permutations",
    "cluster_purity",
    "column_role",
    "compare_rankings",
    "compare_with_study",
    "embedding_diagnostics",
    "faiss_available",
    "fit_ellipses",
    "fit_main_sequence",
    "left_out_columns",
    "permutation_energy_test",
    "project_2d",
    "property_columns",
    "region_precision",
    "sfms_classes",
    "stack_maps",
    "truth_regimes",
]
