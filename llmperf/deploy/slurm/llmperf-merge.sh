#!/usr/bin/env bash
# Merges the shards llmperf-array.sh wrote under $RESULTS (submit it with
# --dependency=afterok on the array). Exits 1 on a cross-over.
#SBATCH --job-name=llmperf-merge
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
#SBATCH --output=llmperf-merge-%j.log
set -euo pipefail

: "${RESULTS:?set RESULTS, the directory llmperf-array.sh wrote to}"

llmperf merge "$RESULTS" --out "$RESULTS/merged"
