"""The progress display redraws one line on a terminal and prints one line per node elsewhere."""

from __future__ import annotations

import io

from solune.workflow.progress import Console, PromptProgress, bar

PROMPT = {
    "3": {"class_type": "KSampler", "_meta": {"title": "KSampler"}, "inputs": {}},
    "8": {"class_type": "VAEDecode", "_meta": {"title": "Decode"}, "inputs": {}},
}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_fills_in_proportion_and_clamps():
    assert bar(0, 4, width=4) == "[....]"
    assert bar(1, 4, width=4) == "[#...]"
    assert bar(9, 4, width=4) == "[####]"
    assert bar(1, 0, width=4) == "[....]"


def test_terminal_redraws_in_place_with_steps():
    stream = Terminal()
    progress = PromptProgress(Console(stream=stream), PROMPT)
    progress.executing("3")
    progress.progress("3", 5, 10)
    progress.finished()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "\r[1/2] KSampler #3 [############............] 5/10" in text


def test_log_output_has_one_line_per_node_and_no_carriage_returns():
    stream = io.StringIO()
    progress = PromptProgress(Console(stream=stream), PROMPT)
    progress.executing("3")
    for step in range(1, 11):
        progress.progress("3", step, 10)
    progress.executing("8")
    progress.finished()
    assert stream.getvalue().splitlines() == ["[1/2] KSampler #3", "[2/2] Decode #8"]


def test_message_clears_the_progress_line_first():
    stream = Terminal()
    console = Console(stream=stream)
    console.status("[1/2] KSampler #3")
    console.say("done")
    assert stream.getvalue().endswith("\r" + " " * len("[1/2] KSampler #3") + "\rsolune.run: done\n")


def test_no_progress_option_silences_the_bar_but_not_messages():
    stream = io.StringIO()
    console = Console(stream=stream, show_progress=False)
    PromptProgress(console, PROMPT).executing("3")
    console.say("saved")
    assert stream.getvalue() == "solune.run: saved\n"
