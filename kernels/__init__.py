"""Triton kernels and their launchers, installed as fastnerf.kernels.

Imported only when the "triton" backend runs. On a CPU they run under TRITON_INTERPRET=1
(the tests do this); the variable must be set before this package is first imported.
"""
