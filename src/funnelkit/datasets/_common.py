"""What the generators and the bundled data share: the outcome names and pandas' string
dtype. A leaf module, so that the generators import each other in one direction only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DEFAULT_WON = "Won"
DEFAULT_LOST = ("Lost", "Disqualified")


def string_dtype() -> Any:
    """pandas' default string dtype: ``str`` (pandas 3, ``future.infer_string``) or object."""
    return pd.Index(np.array(["x"], dtype=object)).dtype
