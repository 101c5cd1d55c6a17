"""The standard handler library and the standard templates built on it, shipped with device-jobs."""
