"""The serial cell-board protocol ("cellbus"): framing, commands, one owner per line, a rack.

The wire format is specified in ``docs/cellbus.md``; this package is its reference master.
"""
