#!/bin/bash
# The glmflow driver as a small SGE job; it submits one job per node itself.
#   qsub examples/driver_sge.sh /shared/ds /shared/ds/derivatives task_information.json
# Keep the work directory on shared storage and reuse it when resubmitting after a crash.
#$ -N glmflow-driver
#$ -l mem_free=2G
#$ -cwd -j y -V
set -euo pipefail
BIDS_DIR=$1 OUTPUT_DIR=$2 MODEL=$3
export NIPYPE_NO_ET=1
glmflow "$BIDS_DIR" "$OUTPUT_DIR" participant --model "$MODEL" \
    -w "${WORK_DIR:-$OUTPUT_DIR/../glmflow_work}" \
    --plugin SGE --n-cpus 50 \
    --plugin-args '{"qsub_args": "-q all.q"}'
