"""Errors a user can cause and fix: the CLI prints them without a traceback and exits 2."""


class UserError(ValueError):
    """Bad input from the user (a path, a file, an argument), with a message that says what to fix."""
