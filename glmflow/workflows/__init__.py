"""Workflow factories ``init_*_wf(*, ...)``: build graphs, run nothing."""
