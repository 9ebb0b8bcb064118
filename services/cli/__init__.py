"""The ``omnitrail`` command line, by concern: ``produce``, ``read``, ``operate``, ``samples``; ``render`` is the one
way to print. Each command builds the one ``Settings`` object and passes it down."""

from services.cli import produce, read, operate, samples  # noqa: F401, I001  (importing them registers their commands)
from services.cli.apps import app

__all__ = ["app"]
