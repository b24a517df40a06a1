"""Pure PyTorch references: the specification of every op and its "torch" backend.

Written for clarity and to be differentiable by autograd; vectorised, never per-ray Python loops.
"""
