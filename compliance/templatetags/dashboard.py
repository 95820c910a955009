from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def short(value, length: int = 12) -> str:
    """A digest shortened for tables; the full value stays in the title attribute."""
    text = str(value or "")
    return text if len(text) <= int(length) else f"{text[: int(length)]}…"


@register.filter
def duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)
