"""Data types of the typed project."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class Config:
    scale: float
    offset: float = 0.0
    tags: List[str] = field(default_factory=list)


@dataclass
class Report:
    count: int
    total: float
    scaled: List[float]
    weights: Dict[str, int]
    note: Optional[str] = None
