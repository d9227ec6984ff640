"""What the CLI and the Python API call: plan (core), build (workflows), execute.

Layering: core < interfaces < workflows < runners < cli; the runners hand an
:class:`glmflow.execution.ExecutionOptions` to :mod:`glmflow.execution`.
"""
