def normalize(values: list[float]) -> list[float]:
    top = max(values) or 1.0
    return [v / top for v in values]
