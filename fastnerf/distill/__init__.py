"""Distillation data for the students: camera samplers around a teacher's training cameras and a
bounded, refreshed in-memory pool of teacher-rendered views (``ViewPool``)."""

from .pool import ViewPool
from .samplers import OrbitSampler, PerturbedPoseSampler, sampler_for

__all__ = ["OrbitSampler", "PerturbedPoseSampler", "ViewPool", "sampler_for"]
