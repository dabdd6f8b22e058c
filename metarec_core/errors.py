"""User-facing error types: their message is shown as one clear line (CLI) or a UI error box."""


class MetaRecError(Exception):
    """Base class for problems caused by input or state the user can fix."""


class ValidationError(MetaRecError):
    """Input data is malformed: missing columns, unparsable values, duplicates, ..."""


class NotFoundError(MetaRecError):
    """A named dataset, model, user or item does not exist."""


class ConflictError(MetaRecError):
    """The operation would overwrite something (e.g. a dataset name that exists) without --replace."""
