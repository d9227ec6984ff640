"""One job per subject: a sub-workflow run as one node (``--cluster-jobs subject``).

Per-node jobs give the most parallelism, but a study of 100 subjects x 2 runs is about
1,400 jobs of a few seconds each, each paying a Python start, Nipype's import and the
scheduler's own latency (3-4 s a job here), and a site's queue limits; locally, MultiProc's
driver passes over the 1,400-node graph each time a node ends. With ``subject``
each top-level sub-workflow of the graph (a subject's runs and their combination, at the
participant level) is one node, :class:`RunSubgraph`, whose job runs that sub-workflow with
Nipype's Linear plugin in the same node folders as a per-node run: the two modes share one
cache, a rerun recomputes inside each job only what changed, and the maps are the same.

The job node always runs (a cached sub-workflow takes it a second or two); a rerun that
nothing touched never reaches the graph (:mod:`glmflow.execution.unchanged`).
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

from nipype.interfaces import base as nipype_base
from nipype.interfaces.base import File, isdefined, traits
from nipype.pipeline import engine as pe
from nipype.utils.filemanip import ensure_list

from glmflow.core.publish import atomic_write_json
from glmflow.execution.plugins import ExecutionError

# the prefix of a job node: execute() reads its published files as it reads a sink's
JOB_PREFIX = "job_"


class _RunSubgraphInputSpec(nipype_base.BaseInterfaceInputSpec):
    graph_file = File(exists=True, mandatory=True, desc="the pickled sub-workflow to run")
    base_dir = traits.Str(mandatory=True, desc="the folder the sub-workflow's folder is in")


class _RunSubgraphOutputSpec(nipype_base.TraitedSpec):
    out_files = nipype_base.OutputMultiObject(File(), desc="what its sinks publish")
    manifest_file = File(
        exists=True, desc="manifest.json: every [source, destination] of its sinks' manifests"
    )


class RunSubgraph(nipype_base.SimpleInterface):
    """Run a pickled sub-workflow with Linear in its usual folders; gather its sinks."""

    input_spec = _RunSubgraphInputSpec
    output_spec = _RunSubgraphOutputSpec

    def _run_interface(self, runtime):
        import json

        workflow = pickle.loads(Path(self.inputs.graph_file).read_bytes())
        workflow.base_dir = self.inputs.base_dir
        execgraph = workflow.run(plugin="Linear")
        out_files, pairs = [], []
        for node in execgraph.nodes():
            outputs = node.result.outputs if node.name.startswith("ds_") else None
            if outputs is None:
                continue
            if isdefined(getattr(outputs, "out_files", None)):
                out_files += ensure_list(outputs.out_files)
            if isdefined(getattr(outputs, "manifest_file", None)):
                pairs += json.loads(Path(outputs.manifest_file).read_text())
        manifest = atomic_write_json(Path(runtime.cwd) / "manifest.json", pairs)
        self._results.update(out_files=out_files, manifest_file=str(manifest))
        return runtime


def _max_request(workflow) -> tuple[float, int]:
    nodes = [workflow.get_node(name) for name in workflow.list_node_names()]
    # (the sub-workflow's heaviest node sets the job's request)
    return max(n.mem_gb for n in nodes), max(n.n_procs for n in nodes)


def group_jobs(workflow, base_dir: Path):
    """``workflow`` (configured, with its base_dir) with each sub-workflow made one node.

    The top level must hold only sub-workflows with no edge between them (the
    participant graph); anything else is refused in one line.
    """
    graph = workflow._graph
    loose = [n for n in graph.nodes() if not isinstance(n, pe.Workflow)]
    if loose or graph.number_of_edges():
        what = f"node '{loose[0]}'" if loose else "connected sub-workflows"
        raise ExecutionError(
            f"--cluster-jobs subject runs each sub-workflow of '{workflow.name}' as one job, "
            f"but it has {what} at its top (only the participant level is made of "
            "independent subjects); use --cluster-jobs node"
        )
    grouped = pe.Workflow(name=workflow.name, base_dir=str(base_dir))
    grouped.config = copy.deepcopy(workflow.config)
    graphs = base_dir / workflow.name / "job_graphs"
    graphs.mkdir(parents=True, exist_ok=True)
    for sub in sorted(graph.nodes(), key=lambda w: w.name):
        sub.config = copy.deepcopy(workflow.config)
        path = graphs / f"{sub.name}.pkl"
        path.write_bytes(pickle.dumps(sub, protocol=pickle.HIGHEST_PROTOCOL))
        mem_gb, n_procs = _max_request(sub)
        node = pe.Node(
            RunSubgraph(graph_file=str(path), base_dir=str(base_dir / workflow.name)),
            name=f"{JOB_PREFIX}{sub.name}", mem_gb=mem_gb, n_procs=n_procs, overwrite=True,
        )  # fmt: skip
        grouped.add_nodes([node])
    return grouped
