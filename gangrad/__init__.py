"""gangrad: a benchmark suite comparing gradient estimators for training GAN generators."""

from __future__ import annotations

from gangrad import estimators, spaces
from gangrad.spaces import Continuous, Discrete

__version__ = "0.1.0"

__all__ = ["Continuous", "Discrete", "__version__", "estimators", "load", "spaces"]


def load(run: str, store=None, table: str = "metrics"):
    """A stored run as a pandas DataFrame: ``table="metrics"``, the tidy metrics (one row
    per cell × kind × step × layer × name, see :mod:`gangrad.runner`); ``"summary"``, the
    report's ranking per task with each estimator's paired comparison with the best
    (:func:`gangrad.report.tables.summary_table`), decided at the level of the run's
    suite (a sequential suite's ``1 − α/K``)."""
    from gangrad.runner import load as _load

    if table == "metrics":
        return _load(run, store)
    if table == "summary":
        from gangrad.report import stored_suite
        from gangrad.report.tables import summary_table
        from gangrad.runner import Store, tidy

        with Store(store, readonly=True) as db:
            suite = stored_suite(db.run_info(run))
            cells = db.cells(run)
            return summary_table(tidy(db.metrics(run), cells), cells,
                                 suite.level if suite is not None else 0.95)
    raise ValueError(f"load: table must be metrics or summary, got {table!r}")
