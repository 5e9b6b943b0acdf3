"""User-facing errors: the CLI prints them as one paragraph, without a traceback."""


class UserError(Exception):
    """A problem in the user's input (recipe, data, paths) that the message explains and says how to fix."""


class TrainingDiverged(UserError):
    """The loss became NaN/inf; the message carries the diagnosis."""
