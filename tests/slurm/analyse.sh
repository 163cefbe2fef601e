#!/bin/bash
# The command of the test job (`make test-slurm`), in place of the example's
# ./analyse.sh: it writes analysis.log and a result file, and on SIGUSR1 (which
# `scancel --batch --signal=USR1` sends to jobmon-run, and jobmon-run passes on)
# notes it and exits with status 7, which Slurm must record as the job's.
trap 'echo "analyse: got USR1 after event $i, stopping" >> analysis.log; exit 7' USR1
echo "analyse: reading $1 ($(wc -l < "$1") lines) in job $SLURM_JOB_ID" > analysis.log
mkdir -p output
for i in $(seq 1 600); do
    echo "event $i processed" >> analysis.log
    echo "$i" > output/progress.txt
    sleep 0.2
done
echo "analyse: done" >> analysis.log
