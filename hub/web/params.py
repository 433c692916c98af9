"""Parameter types shared by the routes, stricter than pydantic's defaults where those surprise.

Pydantic's lax mode reads a bare number as a Unix time, so ``?date=0.0`` used to fetch the
manager report of 1970-01-01 (found by the OpenAPI fuzz run). The schema says ``format: date``;
``IsoDate`` holds the app to exactly that: ``YYYY-MM-DD`` and a real day.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import BeforeValidator

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> object:
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value  # pydantic then checks it is a real day (no 2026-02-30)


IsoDate = Annotated[dt.date, BeforeValidator(_iso_day)]
