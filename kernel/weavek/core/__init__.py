"""The pure kernel: no I/O, no clocks, no randomness of its own.

Nothing under this package imports anyio, pluggy, socket, time, random or os
(``tests/core/test_purity.py`` enforces it). Time and randomness come in as
arguments; effects go out as return values.
"""
