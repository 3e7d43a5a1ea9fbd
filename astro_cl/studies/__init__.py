"""The study layer: tasks on an embedding, the two studies, and their reports, as public calls.

Everything ``astro-cl evaluate``, ``astro-cl report`` and ``astro-cl demo`` do
is a call of this module, so a script can do the same:

* `run_tasks` runs a set of downstream tasks on an embedding and a catalogue
  and returns a `TaskResults` (tables, per-galaxy table, what was left out and
  why, whether the embedding collapsed), which writes a results folder
  (`TaskResults.write`, `TaskResults.read`), draws its figures and writes its
  report (`TaskResults.report`);
* `run_ecalifa_study` runs the eCALIFA contrastive study (Martinez-Solaeche et
  al. 2024) on an IFU survey: PCA images, SimCLR, every task, the
  luminosity-channel ablation; it returns an `ECALIFAStudy`;
* `run_picasso_study` runs the PICASSSO study (Buck & Wolf 2021) on images
  with truth maps: U-Net, predicted maps, bias and scatter beside the study's;
  it returns a `PicassoStudy`;
* `write_study_report` puts one or several of these on one report page, which
  says what was done, gives the headline results beside the studies' numbers
  (`ACCEPTANCE`, `check_acceptance`), then the figures, tables and provenance;
* `SourceView` is a row or channel subset of a batch source (training split,
  held-out galaxies, images without the luminosity channel).

A study in a script (see ``examples/studies``)::

    from astro_cl.studies import run_ecalifa_study, run_picasso_study, write_study_report
    from astro_cl.surveys.ecalifa_mock import ECALIFAMockSurvey
    from astro_cl.surveys.sdss_mock import SDSSMockSurvey

    cubes = run_ecalifa_study(ECALIFAMockSurvey(n=600, size=32), "out",
                              simclr={"width": 0.25, "epochs": 20, "batch_size": 64})
    maps = run_picasso_study(SDSSMockSurvey(n=800, size=64), "out",
                             unet={"width": 0.1875, "epochs": 15, "lr": 2e-3})
    write_study_report("out/report", {"cubes": cubes, "maps": maps})

Nothing here imports torch until a study runs.
"""

from astro_cl.studies.ecalifa import ECALIFA_PROPERTIES, ECALIFAStudy, run_ecalifa_study
from astro_cl.studies.picasso import PICASSSO_TARGETS, PicassoStudy, run_picasso_study
from astro_cl.studies.report import (
    ACCEPTANCE,
    ACCEPTANCE_MEDIUM,
    MAP_CHECKS,
    acceptance_values,
    assemble_report,
    check_acceptance,
    describe_augmenter,
    describe_tasks,
    task_figures,
    task_headline,
    write_study_report,
)
from astro_cl.studies.results import DEFAULT_TASKS, TaskResults, read_table, run_tasks
from astro_cl.studies.sources import SourceView

__all__ = [
    "ACCEPTANCE",
    "ACCEPTANCE_MEDIUM",
    "DEFAULT_TASKS",
    "ECALIFA_PROPERTIES",
    "MAP_CHECKS",
    "PICASSSO_TARGETS",
    "ECALIFAStudy",
    "PicassoStudy",
    "SourceView",
    "TaskResults",
    "acceptance_values",
    "assemble_report",
    "check_acceptance",
    "describe_augmenter",
    "describe_tasks",
    "read_table",
    "run_ecalifa_study",
    "run_picasso_study",
    "run_tasks",
    "task_figures",
    "task_headline",
    "write_study_report",
]
