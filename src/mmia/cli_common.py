"""What every `mmia` command shares: `--quiet` accepted after the command as well as before it."""

from __future__ import annotations

import functools
import inspect

import typer


def accepts_quiet(fn):
    """Give a command function its own `--quiet`/`-q` (the group's stays: either place works).

    typer reads a command's options from its signature, so the wrapper's signature is the
    function's plus a keyword-only `quiet`.
    """
    sig = inspect.signature(fn)
    option = typer.Option(False, "--quiet", "-q", help="No progress bars or chatter (as `mmia -q CMD`).")
    quiet = inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=option)

    @functools.wraps(fn)
    def command(*args, quiet: bool = False, **kwargs):
        if quiet:  # only ever switches on: `mmia --quiet CMD` stays quiet without it
            from mmia import progress

            progress.set_quiet(True)
        return fn(*args, **kwargs)

    command.__signature__ = sig.replace(parameters=[*sig.parameters.values(), quiet])
    return command
