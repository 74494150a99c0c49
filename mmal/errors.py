"""Errors a user can cause (paths, budgets, names): printed as one sentence, without a traceback."""


class UserError(Exception):
    """A problem with the user's input; the message names it and the fix."""
