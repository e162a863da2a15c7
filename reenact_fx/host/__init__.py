"""Hosts: the render service the OFX and frei0r bridges talk to."""
