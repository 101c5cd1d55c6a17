"""The fleet: devices and their tokens (``devices``, ``tokens``), the filters that choose among
them (``filters``) and the fleet's numbers (``counts``)."""
