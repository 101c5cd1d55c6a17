"""The periodic sweeps, one module each, each with its task name, interval setting and batch
size (run by beat through ``workers.periodic``)."""
