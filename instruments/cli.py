"""The command line: ``python -m instruments list | show | score | change | import-fhir``.

Results are JSON on stdout. Any error (bad input, unknown key, usage) is one line on stderr,
with nothing on stdout and exit status 2, so scripts can trust whatever is printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import all as all_instruments
from . import change, get, score
from .errors import InstrumentError

_INTEGER = re.compile(r"-?[0-9]+")
EXIT_ERROR = 2


class CommandError(Exception):
    """A usage or input error found by the command line itself."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print a usage block; the contract is one line on stderr.
        raise CommandError(message)


def _integer(text: str, what: str) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        raise CommandError(f"{what} {text!r} is not an integer")
    return int(text)


def parse_answers(key: str, text: str) -> list[int | None]:
    """Split ``2,0,,1`` into answers in item order; an empty slot is a missing answer."""
    return [None if not slot.strip() else _integer(slot, f"{key}: item {number} answer")
            for number, slot in enumerate(text.split(","), start=1)]


def _list(args: argparse.Namespace) -> Any:
    return [{"key": i.key, "version": i.version, "title": i.title} for i in all_instruments()]


def _show(args: argparse.Namespace) -> Any:
    return get(args.key).to_dict()


def _score(args: argparse.Namespace) -> Any:
    get(args.key)  # an unknown key is reported before any answer
    return score(args.key, parse_answers(args.key, args.answers)).to_dict()


def _change(args: argparse.Namespace) -> Any:
    baseline = _integer(args.baseline, f"{args.key}: baseline")
    current = _integer(args.current, f"{args.key}: current")
    return change(args.key, baseline, current).to_dict()


def _import_fhir(args: argparse.Namespace) -> Any:
    # Imported here: only the importer needs tomli-w; scoring stays standard-library only.
    from .fhir.importer import import_fhir

    result = import_fhir(args.file, key=args.key, output=args.output)
    # What FHIR could not express goes to stderr, one point a line, for the person reviewing.
    print(f"import-fhir: wrote {result.path}", file=sys.stderr)
    for note in result.notes:
        print(f"import-fhir: {note}", file=sys.stderr)
    return result.to_dict()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand carries its handler in ``handler``."""
    parser = _Parser(prog="python -m instruments", description="Score outcome questionnaires.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], Any], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    command("list", _list, "list the instruments: key, version and title")
    command("show", _show, "print a whole definition").add_argument("key", metavar="KEY")
    scoring = command("score", _score, "score one set of answers")
    scoring.add_argument("key", metavar="KEY")
    scoring.add_argument("--answers", required=True,
                         help="answers in item order, comma-separated; an empty slot is missing")
    changing = command("change", _change, "compare a baseline total with a current total")
    changing.add_argument("key", metavar="KEY")
    changing.add_argument("--baseline", required=True, metavar="N")
    changing.add_argument("--current", required=True, metavar="M")
    importing = command("import-fhir", _import_fhir,
                        "turn a FHIR R4 Questionnaire (JSON) into a definition file to review")
    importing.add_argument("file", metavar="FILE.json")
    importing.add_argument("--key", help="the definition's key (default: from --output, else FILE's name)")
    importing.add_argument("--output", metavar="PATH", help="where to write (default: KEY.toml here; "
                           "never overwritten)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0, or 2 after a one-line error)."""
    try:
        args = build_parser().parse_args(argv)
        result = args.handler(args)
    except (CommandError, InstrumentError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(result, indent=2))
    return 0
