"""Wording shared by the commands: plurals, and help text laid out so that examples survive.

Click rewraps every paragraph of a help text to the terminal's width, which breaks an example
in the middle of a token and moves a `# comment` away from its command. `keep_examples`
marks each indented paragraph (examples, JSON shapes) with Click's no-rewrap marker `\\b`, so
help authors write examples as indented lines and nothing else; a long example is broken
with a trailing backslash, as in a shell (tests/cli/test_help.py keeps them within 80
columns).
"""

from __future__ import annotations

from typing import Any

#: Click's marker for "do not rewrap this paragraph": a line holding only a backspace.
NO_REWRAP = "\b"


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`1 account`, `2 accounts`, `0 accounts` (`plural_form` for irregular nouns)."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"


def keep_examples(command: Any) -> Any:
    """Mark the indented paragraphs of `command`'s help and epilog (and of its subcommands')
    as not to be rewrapped. Idempotent; returns `command`."""
    for attr in ("help", "epilog"):
        text = getattr(command, attr, None)
        if text:
            setattr(command, attr, preformat(text))
    for sub in (getattr(command, "commands", None) or {}).values():
        keep_examples(sub)
    return command


def preformat(text: str) -> str:
    """`text` (a help text or epilog) with every paragraph whose lines are all indented
    preceded by the no-rewrap marker. Prose paragraphs are left to Click's wrapping."""
    lines = text.expandtabs().split("\n")
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph and paragraph[0] != NO_REWRAP and all(
            line[:1] in (" ", "\t") for line in paragraph
        ):
            out.append(NO_REWRAP)
        out.extend(paragraph)
        paragraph.clear()

    for line in lines:
        if line.strip():
            paragraph.append(line.rstrip())
        else:
            flush()
            out.append("")
    flush()
    return "\n".join(out)
