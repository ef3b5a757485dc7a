"""Tables are never cut to the terminal, as kubectl's (helper-78: a long event message turned TYPE into "…",
dropped AGE and cut REASON to "Shard…", at 80 columns and when piped alike)."""

from __future__ import annotations

import pytest

from podline.cli.common import print_table


def test_a_long_cell_cuts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    message = "shard 0: stage-in: " + "x" * 400
    print_table(["  TYPE", "REASON", "AGE", "MESSAGE"],
                [["  Warning", "BackoffLimitExceeded", "5s", message], ["  Normal", "ShardSucceeded", "1s", "ok"]])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["TYPE", "REASON", "AGE"], ["Warning", "BackoffLimitExceeded", "5s"], ["Normal", "ShardSucceeded", "1s"]]
    assert lines[1].endswith(message) and "…" not in "".join(lines)
    assert lines[0].index("MESSAGE") == lines[1].index("shard 0")  # still a table: the columns line up


def test_no_line_ends_in_padding(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["NAME", "MESSAGE"], [["a", "a long message"], ["b", "x"]])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [line.rstrip() for line in lines] and lines[2].endswith("x"), lines


def test_brackets_in_a_cell_are_text_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    """helper-81: `mount [/data] missing` raised rich's MarkupError (describe crashed on such an event)."""
    print_table(["MESSAGE"], [["mount [/data] missing"], ["[bold]x[/bold]"]])
    assert capsys.readouterr().out.splitlines()[1:] == ["mount [/data] missing", "[bold]x[/bold]"]
