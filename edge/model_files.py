"""Where the bundled model files live (``edge/models/``, shipped as package data).

Found through ``importlib.resources`` rather than ``__file__`` arithmetic, so the answer is the
same in a source checkout, an editable install and the non-editable wheel that
``scripts/flash_device.sh`` installs, whichever room asks.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

MODELS_DIR = Path(str(resources.files("edge") / "models"))
