"""Data types exchanged by the baked project's tasks."""
from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Range:
    low: float
    high: float


@dataclass
class Summary:
    count: int
    mean: float
    spread: Range
    label: Optional[str] = None
    values: List[float] = field(default_factory=list)
