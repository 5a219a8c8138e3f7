"""Terminal text as a terminal shows it: SGR styles, \\r frames, every other escape gone."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobwatch.view.ansi import Span, Style, for_terminal, plain, spans, spans_to_wire

ESC = "\x1b"


def test_sgr_colours_and_bold_become_styles() -> None:
    text = f"{ESC}[1;31mERROR{ESC}[0m loss {ESC}[32mok{ESC}[39m done"
    assert spans(text) == [
        Span("ERROR", Style(fg=1, bold=True)),
        Span(" loss ", Style()),
        Span("ok", Style(fg=2)),
        Span(" done", Style()),
    ]


@pytest.mark.parametrize(
    ("sequence", "style"),
    [
        ("[91m", Style(fg=9)),  # bright red
        ("[104m", Style(bg=12)),  # bright blue background
        ("[38;5;208m", Style(fg="#ff8700")),  # 256 colours: the cube
        ("[38;5;244m", Style(fg="#808080")),  # 256 colours: the greys
        ("[38;5;3m", Style(fg=3)),  # 256 colours: the palette
        ("[38;2;10;20;30m", Style(fg="#0a141e")),  # 24-bit
        ("[48:2::10:20:30m", Style(bg="#0a141e")),  # 24-bit, ITU T.416 colon form
        ("[2;3;4;7m", Style(dim=True, italic=True, underline=True, inverse=True)),
        ("[4:0m", Style()),  # "not underlined"
        ("[m", Style()),
        ("[?25m", Style()),  # private parameters: not SGR
    ],
)
def test_sgr_forms(sequence: str, style: Style) -> None:
    assert spans(f"{ESC}{sequence}x") == [Span("x", style)]


def test_later_codes_switch_attributes_off() -> None:
    runs = spans(f"{ESC}[1;3;4;7;31;42ma{ESC}[22;23;24;27;39;49mb")
    assert runs == [Span("a", Style(fg=1, bg=2, bold=True, italic=True, underline=True, inverse=True)),
                    Span("b", Style())]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (" 10%|#   | 1/10\r 20%|##  | 2/10\r 30%|### | 3/10", " 30%|### | 3/10"),  # tqdm
        ("epoch 1\r", "epoch 1"),  # a \r with nothing after changes nothing
        ("a\r\nb", "a\nb"),  # Windows line ends
        ("one\rtwo\nthree\rfour", "two\nfour"),  # per line
        ("abc\r\r", "abc"),
    ],
)
def test_carriage_returns_keep_the_last_frame(text: str, shown: str) -> None:
    assert plain(text) == shown


def test_a_colour_set_in_an_earlier_frame_goes_on() -> None:
    assert spans(f"{ESC}[33m10%\r20%") == [Span("20%", Style(fg=3))]


@pytest.mark.parametrize(
    "text",
    [
        f"a{ESC}[2Jb",  # clear screen
        f"a{ESC}[1A{ESC}[2Kb",  # cursor up, clear line
        f"a{ESC}]0;window title\x07b",  # OSC title, BEL-terminated
        f"a{ESC}]8;;https://x.org{ESC}\\b",  # OSC 8 hyperlink, ST-terminated
        f"a{ESC}Pdevice control{ESC}\\b",  # DCS
        f"a{ESC}(Bb",  # character set
        f"a{ESC}cb",  # full reset
        "a\x07\x08\x00\x7fb\x9b",  # BEL, BS, NUL, DEL, an unfinished 8-bit CSI
    ],
)
def test_every_other_escape_and_control_is_removed(text: str) -> None:
    assert plain(text) == "ab"


def test_tabs_and_newlines_stay() -> None:
    assert plain("a\tb\nc") == "a\tb\nc"


def test_for_terminal_keeps_only_sgr_and_resets_at_the_end() -> None:
    text = f"{ESC}]0;t\x07{ESC}[2J{ESC}[1;38;5;196mred{ESC}[0m plain{ESC}[4mu"
    assert for_terminal(text) == f"{ESC}[0;1;38;2;255;0;0mred{ESC}[0m plain{ESC}[0;4mu{ESC}[0m"
    assert for_terminal("no colours") == "no colours"


def test_wire_spans_only_for_styled_text() -> None:
    assert spans_to_wire(spans("plain\r text")) is None
    assert spans_to_wire(spans(f"{ESC}[1;31ma{ESC}[0mb{ESC}[7mc")) == [
        {"text": "a", "fg": 9, "bold": True},
        {"text": "b"},
        {"text": "c", "fg": "inverse", "bg": "inverse"},
    ]


def test_bold_text_in_the_first_8_colours_is_drawn_bright_as_in_a_jupyterlab_cell() -> None:
    # @jupyterlab/rendermime (ansi rendering of outputs): bold with a colour 0-7 takes
    # the "intense" one, before inverse swaps text and background.
    assert spans_to_wire(spans(f"{ESC}[1;31ma{ESC}[22mb{ESC}[1;91mc{ESC}[38;5;2md")) == [
        {"text": "a", "fg": 9, "bold": True},
        {"text": "b", "fg": 1},
        {"text": "c", "fg": 9, "bold": True},
        {"text": "d", "fg": 10, "bold": True},
    ]
    assert spans_to_wire(spans(f"{ESC}[1;7;31;42mx{ESC}[0;1;38;2;1;2;3my")) == [
        {"text": "x", "fg": 2, "bg": 9, "bold": True},
        {"text": "y", "fg": "#010203", "bold": True},
    ]


ANY_TEXT = st.text(
    alphabet=st.sampled_from(
        [
            "a",
            "b",
            " ",
            "\n",
            "\r",
            "\t",
            ESC,
            "[",
            "]",
            ";",
            "1",
            "3",
            "m",
            "\x07",
            "\\",
            "\x9b",
            "\x00",
            "é",
        ]
    ),
    max_size=80,
)


@given(ANY_TEXT)
def test_any_text_comes_out_without_controls(text: str) -> None:
    shown = plain(text)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", shown)
    assert "".join(run.text for run in spans(text)) == shown
    # what goes to a terminal holds SGR sequences and nothing else
    assert not re.search(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]", for_terminal(text))
    assert re.sub(r"\x1b\[[0-9;]*m", "", for_terminal(text)) == shown
