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
    as not to be rewrapped; move examples written in a docstring to the epilog, so that help
    shows arguments and options first and examples after them, everywhere; give the command
    its whole summary for its group's list (Click would cut it at 45 characters, mid-word).
    Idempotent; returns `command`."""
    help_text = getattr(command, "help", None) or ""
    head, sep, examples = help_text.partition("\n\nExample")
    if sep and not (command.epilog or "").lstrip().startswith("Example"):
        command.help = head
        command.epilog = f"Example{examples}" + (f"\n\n{command.epilog}" if command.epilog
                                                 else "")
    if command.help and not getattr(command, "short_help", None):
        command.short_help = summary(command.help)
    for attr in ("help", "epilog"):
        text = getattr(command, attr, None)
        if text:
            setattr(command, attr, preformat(text))
    for sub in (getattr(command, "commands", None) or {}).values():
        keep_examples(sub)
    return command


def summary(help_text: str) -> str:
    """The first paragraph of a help text, as one line (a command's entry in its group)."""
    import inspect

    first = inspect.cleandoc(help_text).split("\n\n")[0]
    return " ".join(first.replace(NO_REWRAP, "").split())


#: Placeholders by what Typer shows for a parameter's type: one style, upper case.
_PLACEHOLDERS = {"<str>": "TEXT", "<file>": "FILE", "<path>": "PATH", "<directory>": "DIR",
                 "<int>": "INTEGER", "<int range>": "INTEGER", "<float>": "NUMBER",
                 "<float range>": "NUMBER"}
#: Placeholders by option name, where the name says more than the type.
_BY_NAME = {"output": "FORMAT", "profile": "NAME", "columns": "NAMES"}
_TIME_WORDS = ("interval", "seconds", "timeout", "wait", "skew", "delay")


def plain_params(params: list[Any], ctx: Any) -> list[Any]:
    """`params` with one help style (kept across Click's and Typer's defaults): upper-case
    placeholders (TEXT, FILE, SECONDS, the argument's name: OPEN_KFID), usage lines without
    Typer's braces (`OPEN_KFID [TEXT]`), and environment variables as `[env: NAME]`."""
    for param in params:
        if getattr(param, "_kfcli_plain", False):
            continue
        param._kfcli_plain = True
        if param.param_type_name == "argument":
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
            param.__class__ = _plain_argument(type(param))
        elif param.metavar is None and not (param.is_flag or param.count):
            shown = param.make_metavar(ctx=ctx)
            name = (param.name or "").lower().strip("_")
            if name in _BY_NAME:
                param.metavar = _BY_NAME[name]
            elif shown.startswith("<float") and any(w in name for w in _TIME_WORDS):
                param.metavar = "SECONDS"
            elif shown in _PLACEHOLDERS:
                param.metavar = _PLACEHOLDERS[shown]
            elif shown.startswith("<") and shown.endswith(">"):
                param.metavar = shown[1:-1].upper().replace(" ", "_")
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str) and getattr(param, "show_envvar", False):
            param.show_envvar = False  # Click writes "[env var: X]"; kfcli's help "[env: X]"
            if f"[env: {envvar}]" not in (param.help or ""):
                param.help = f"{param.help or ''} [env: {envvar}]".strip()
    return params


_PLAIN: dict[type, type] = {}


def _plain_argument(cls: type) -> type:
    """A subclass of Typer's argument class whose usage is Click's own: NAME when required,
    [NAME] when optional, NAME... for several (Typer writes {NAME})."""
    if cls in _PLAIN.values():
        return cls
    if cls not in _PLAIN:
        def make_metavar(self: Any, ctx: Any, *, usage: bool = False) -> str:
            var = self.metavar
            if var.startswith("[") or var.startswith("{"):
                var = var[1:-1] if var.startswith("{") else var
            elif usage and not self.required:
                var = f"[{var}]"
            if usage and self.nargs != 1 and not var.endswith("..."):
                var += "..."
            return var

        _PLAIN[cls] = type(f"Plain{cls.__name__}", (cls,), {"make_metavar": make_metavar})
    return _PLAIN[cls]


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
