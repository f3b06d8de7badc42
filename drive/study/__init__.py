"""The robustness study: a zoo of families × training seeds, trained on one recording with one recipe,
stressed under camera noise, driven through the generalization suite, and reported.

* :mod:`drive.study.config` — :class:`StudyConfig`, every setting in one dataclass;
* :mod:`drive.study.zoo` — the trainings (:class:`ZooEntry`), staleness by config, local and Ray training;
* :mod:`drive.study.stages` — the stages (record, train, stress, suite, report) and :func:`run_study`;
* :mod:`drive.study.report` — ``study.md``.
* :mod:`drive.study.results` — :func:`~drive.study.results.make_results`: the README's results (``drive results``).

The command is ``drive study`` (:mod:`drive.commands.study`).
"""

from drive.study.config import StudyConfig
from drive.study.stages import run_study

__all__ = ["StudyConfig", "run_study"]
