"""The fleet: devices and their tokens (``devices``, ``tokens``), the portal's sign-in sessions
made from admin and viewer tokens (``portal_sessions``), the filters that choose among devices
(``filters``) and the fleet's numbers (``counts``)."""
