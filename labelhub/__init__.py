"""labelhub: task assignment, annotator views and a shadow index for Label Studio."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("labelhub")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
