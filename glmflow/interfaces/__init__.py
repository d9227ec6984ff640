"""Thin Nipype SimpleInterfaces over glmflow.core, one concern per module."""
