"""A function's own boto3 (a stand-in): it must win over the server's."""

__version__ = "0.0.0-bundled"
