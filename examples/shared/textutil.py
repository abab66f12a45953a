"""Text helpers. Imported by mixed.spec_tasks only (baked uses none of it)."""


def shout(text: str) -> str:
    return f"{text.upper()}!"
