"""Example event logs: a synthetic generator with known ground truth and a bundled sample.

* :func:`synthetic` simulates deals moving through sales stages, with the edge cases of a
  real CRM export and optional planted effects; ``return_truth=True`` also returns the
  :class:`SyntheticTruth` to check analyses against.
* :func:`load_sample` reads the small bundled sample log; :data:`SAMPLE_KWARGS` holds the
  :class:`funnelkit.EventLog` keywords that describe it.
"""

from ._sample import SAMPLE_KWARGS, load_sample
from ._synthetic import SyntheticTruth, synthetic

__all__ = ["SAMPLE_KWARGS", "SyntheticTruth", "load_sample", "synthetic"]
