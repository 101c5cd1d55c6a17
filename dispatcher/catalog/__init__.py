"""The catalog: what jobs are made of. Templates, handlers, and the standard library of both
that ships with device-jobs."""
