"""The switch between a monitor's live widget and its static snapshot, and the
page's watch on the kernel behind the widget.

The snapshot (:mod:`jobwatch.notebook.snapshot`) is a display of its own
beside the widget, for every page that cannot show the widget. A
:class:`SnapshotSwitch` sits, invisible, inside the widget: while a view of
it is on a page, its ES module (``static/snapshot_switch.js``) hides the
snapshot marked with :attr:`SnapshotSwitch.marker`; without a widget manager
or a kernel nothing hides it, so the snapshot is what shows.

A widget's view outlives its kernel: after a kernel restart (or a kernel that
died) the page keeps the last view, which would go on saying "live". So while
the monitor follows its job, the kernel moves :attr:`SnapshotSwitch.beat` on
every :data:`BEAT` seconds, and the page marks the monitor's connection
"kernel not answering since <time>" when no beat came for :data:`MISSED_BEATS`
of them (until one comes again). A comm message from the monitor's own thread
goes out while a cell runs, so a busy kernel still beats.
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
BEAT = 5.0
"""Seconds between two beats of a live monitor's kernel (one small comm message each)."""
MISSED_BEATS = 3
"""Beats missed in a row after which the page says the kernel is not answering."""


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

    beat = traitlets.Int(0, help="Moved on by the kernel every beat_every seconds.").tag(sync=True)
    beat_every = traitlets.Float(BEAT, help="Seconds between two beats.").tag(sync=True)
    missed_beats = traitlets.Int(MISSED_BEATS, help="Beats missed before the page says so.").tag(
        sync=True
    )
    watching = traitlets.Bool(
        False, help="Whether the monitor follows its job (the page expects beats)."
    ).tag(sync=True)

    def __init__(self, marker: str, **kwargs: Any) -> None:
        super().__init__(marker=marker, beat_every=BEAT, missed_beats=MISSED_BEATS, **kwargs)

    def keep_beating(self, watching: bool, now: float) -> None:
        """Say whether the monitor follows its job, and beat when one is due.

        Parameters
        ----------
        watching:
            The monitor follows a running job (``False`` once it ended or closed:
            the page stops expecting beats).
        now:
            Monotonic seconds; the beat moves on once per :attr:`beat_every`.
        """
        self.watching = watching
        if watching:
            self.beat = max(self.beat, int(now // self.beat_every))

    @traitlets.validate("marker")
    def _check_marker(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if not MARKER.fullmatch(value):
            raise traitlets.TraitError(f"marker must be letters, digits, '-' and '_': {value!r}")
        return value
