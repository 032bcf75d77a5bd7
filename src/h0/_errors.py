"""Errors h0 raises for user mistakes."""


class UsageError(ValueError):
    """A user mistake on the command line or in an input file.

    The CLI prints the message as one line on stderr and exits with code 2, without a traceback.
    The message must name the problem: the file, the column, the row numbers, the option.
    """
