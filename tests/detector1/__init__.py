"""Tests of the Detector-1 science kernels (services/detector1/steps)."""
