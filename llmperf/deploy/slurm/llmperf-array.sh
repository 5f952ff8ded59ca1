#!/usr/bin/env bash
# A sharded llmperf run as a Slurm job array: task i runs shard i of 4
# (--shard auto reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT; see
# docs/sharding.md). Submit, then merge once every task ended:
#
#   export RESULTS=$PWD/llmperf-results/$(date -u +%Y%m%dT%H%M%SZ)
#   export START_AT=$(date -u -d '+3 min' +%FT%TZ)
#   jobid=$(sbatch --parsable llmperf-array.sh)
#   sbatch --dependency=afterok:$jobid llmperf-merge.sh
#
# The endpoint's base URL and key come from the environment sbatch passes
# on (OPENAI_API_BASE, OPENAI_API_KEY; or a .env file in the working
# directory), never from the command line, where `ps` and the job's
# records would show them.
#SBATCH --job-name=llmperf
#SBATCH --array=0-3
#SBATCH --cpus-per-task=2
#SBATCH --mem=1G
#SBATCH --time=02:00:00
#SBATCH --output=llmperf-%A_%a.log
set -euo pipefail

: "${RESULTS:?set RESULTS, the shared directory the shards write to}"
: "${START_AT:?set START_AT, e.g. START_AT=\$(date -u -d '+3 min' +%FT%TZ)}"

llmperf run \
    --model "${LLMPERF_MODEL:-meta-llama/Llama-3.1-8B-Instruct}" \
    --name gateway \
    --shard auto \
    --concurrency 512 \
    --requests 20000 \
    --mean-output-tokens 256 \
    --timeout 120s \
    --start-at "$START_AT" \
    --results-dir "$RESULTS/shard-$SLURM_ARRAY_TASK_ID" \
    --quiet
