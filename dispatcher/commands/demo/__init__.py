"""``dispatcher demo``: the whole system on this machine (``run``), its background processes
(``processes``, shared with the end-to-end tests) and what it prints (``report``)."""
