"""Local emulators of every outside service dialer talks to.

Each emulator is an ASGI app that follows the real service's wire protocol closely enough that the
official SDK, pointed at it through its base URL, cannot tell the difference. sim/ imports nothing of
the product; the product imports sim/ only from its demo / rehearsal entry point.
"""
