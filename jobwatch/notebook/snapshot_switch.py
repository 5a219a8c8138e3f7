"""The switch between a monitor's live widget and its static snapshot.

The snapshot (:mod:`jobwatch.notebook.snapshot`) is a display of its own
beside the widget, for every page that cannot show the widget. A
:class:`SnapshotSwitch` sits, invisible, inside the widget: while a view of
it is on a page, its ES module (``static/snapshot_switch.js``) hides the
snapshot marked with :attr:`SnapshotSwitch.marker`; without a widget manager
or a kernel nothing hides it, so the snapshot is what shows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["SnapshotSwitch"]

MARKER = re.compile(r"[A-Za-z0-9_-]+")
"""What a marker may be made of: it goes into a CSS selector."""


class SnapshotSwitch(anywidget.AnyWidget):
    """Hides the snapshot marked ``marker`` while this widget is shown.

    Parameters
    ----------
    marker:
        The snapshot's marker class: letters, digits, ``-`` and ``_``.

    Raises
    ------
    traitlets.TraitError
        ``marker`` has another character.
    """

    _esm = Path(__file__).parent / "static" / "snapshot_switch.js"

    marker = traitlets.Unicode(
        help="CSS class of the snapshot to hide while this widget is on a page."
    ).tag(sync=True)

    def __init__(self, marker: str, **kwargs: Any) -> None:
        super().__init__(marker=marker, **kwargs)

    @traitlets.validate("marker")
    def _check_marker(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if not MARKER.fullmatch(value):
            raise traitlets.TraitError(f"marker must be letters, digits, '-' and '_': {value!r}")
        return value
