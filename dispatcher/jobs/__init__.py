"""A job's life: an execution is created (``create``) from a document (``documents``) and a
target (``targeting``), fanned out into one row per device (``fanout``), reported on by each
device (``reports``, checked against the state table in ``states``), stopped or repeated by an
operator or a policy (``control``), read (``progress``) and completed once every device has
finished (``completion``). What a change leaves to do after its commit is an ``outcome``."""
