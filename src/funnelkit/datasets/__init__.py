"""Example event logs: a synthetic generator with known ground truth and a bundled sample.

* :func:`synthetic` simulates deals moving through sales stages, with the edge cases of a
  real CRM export and optional planted effects; ``return_truth=True`` also returns the
  :class:`SyntheticTruth` to check analyses against.
* :func:`load_sample` reads the small bundled sample log; :data:`SAMPLE_KWARGS` holds the
  :class:`funnelkit.EventLog` keywords that describe it.
* :func:`field_history` simulates how deals' close dates, amounts and forecast categories
  changed (a CRM's field-history export); :func:`load_sample_history` reads the sample's,
  :data:`SAMPLE_HISTORY_KWARGS` holds the keywords of
  :meth:`funnelkit.EventLog.with_history` for it.
* ``synthetic(..., activities=True)`` also simulates calls, emails, meetings and survey
  answers per visit (optionally with a planted feedback effect);
  :func:`load_sample_activities` reads the sample's, :data:`SAMPLE_ACTIVITIES_KWARGS`
  holds the keywords of :meth:`funnelkit.EventLog.with_activities` for it.
"""

from ._activities import SAMPLE_ACTIVITIES_KWARGS, load_sample_activities
from ._history import SAMPLE_HISTORY_KWARGS, field_history, load_sample_history
from ._sample import SAMPLE_KWARGS, load_sample
from ._synthetic import SyntheticTruth, synthetic

__all__ = [
    "SAMPLE_ACTIVITIES_KWARGS",
    "SAMPLE_HISTORY_KWARGS",
    "SAMPLE_KWARGS",
    "SyntheticTruth",
    "field_history",
    "load_sample",
    "load_sample_activities",
    "load_sample_history",
    "synthetic",
]
