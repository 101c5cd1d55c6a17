"""The device poll, the hottest path of the product: the next job in one query on a per-thread
connection (``next_job``, ``connection``), the devices each API process knows (their verified
tokens, and which are idle: answered from memory) (``idle``), and the batched ``last_seen_at``
sightings (``sightings``)."""
