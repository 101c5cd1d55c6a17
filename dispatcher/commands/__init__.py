"""The server's commands of ``dispatcher`` and what they run: the process command lines, the
checks a server refuses to start without, the signing key, and ``dispatcher demo``."""
