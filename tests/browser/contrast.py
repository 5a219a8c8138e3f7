"""WCAG 2.1 contrast of rendered text, read from the page's computed colours."""

from __future__ import annotations

import re
from typing import Any

AA_NORMAL_TEXT = 4.5
"""Least contrast ratio for normal-size text at level AA (WCAG 2.1, success criterion 1.4.3)."""

# The element's colour, and the background it is drawn on: the first ancestor's
# (or its own) background colour that is not fully transparent, else the page's white.
READ_COLOURS = """(node) => {
    let back = null;
    for (let at = node; at; at = at.parentElement) {
        const colour = getComputedStyle(at).backgroundColor;
        const alpha = colour.startsWith("rgba") ? parseFloat(colour.split(",")[3]) : 1;
        if (alpha > 0) { back = colour; break; }
    }
    return { text: getComputedStyle(node).color, background: back || "rgb(255, 255, 255)" };
}"""


def _rgba(colour: str) -> tuple[float, float, float, float]:
    numbers = [float(n) for n in re.findall(r"[\d.]+", colour)]
    if len(numbers) < 3:
        raise ValueError(f"not an rgb() colour: {colour!r}")
    return numbers[0], numbers[1], numbers[2], numbers[3] if len(numbers) > 3 else 1.0


def _luminance(rgb: tuple[float, float, float]) -> float:
    """Relative luminance (WCAG 2.1 definition, sRGB)."""

    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(text: str, background: str) -> float:
    """The contrast ratio of CSS ``rgb()``/``rgba()`` colours ``text`` over ``background``
    (text with alpha is blended over the background first), 1-21."""
    tr, tg, tb, ta = _rgba(text)
    br, bg, bb, _ = _rgba(background)
    blended = (tr * ta + br * (1 - ta), tg * ta + bg * (1 - ta), tb * ta + bb * (1 - ta))
    lighter, darker = sorted((_luminance(blended), _luminance((br, bg, bb))), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def rendered_contrast(locator: Any) -> tuple[float, dict[str, str]]:
    """The contrast of the element's text over what it is drawn on, and the colours read."""
    colours: dict[str, str] = locator.evaluate(READ_COLOURS)
    return contrast(colours["text"], colours["background"]), colours
