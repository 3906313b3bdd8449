"""Exceptions raised by the instruments package.

Every message is one line and names what was wrong, so the command line can print it as is
and the web app can show or log it without rewording.
"""


class InstrumentError(ValueError):
    """Base class: any bad definition or bad input given to the instruments package."""


class UnknownInstrument(InstrumentError):
    """No instrument definition has the requested key."""


class InvalidAnswers(InstrumentError):
    """Answers cannot be scored: wrong count, not an integer, outside the item's options."""


class InvalidScore(InstrumentError):
    """A baseline or current total is not an integer within the instrument's total range."""


class DefinitionError(InstrumentError):
    """A definition file is malformed or inconsistent; the message names the file and field."""
