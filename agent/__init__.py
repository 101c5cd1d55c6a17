"""The device agent: polls for jobs, runs job documents v1.0, reports, survives reboots.

It runs on small Linux devices as root, so it needs only the standard library, marshmallow
(through ``schemas``) and, for the optional MQTT nudges, paho-mqtt.
"""

__version__ = "0.1.0"
