#!/bin/bash
# A Slurm batch job monitored by JobMon: submit with
#
#     sbatch examples/slurm-job.sh
#
# and, while it runs, ask it from your desktop:
#
#     jobmon-query jobs
#     jobmon-query tail -F 1234 analysis.log     # 1234_7 for task 7 of an array
#
#SBATCH --job-name=analysis
#SBATCH --output=analysis-%j.out
#SBATCH --time=02:00:00
#SBATCH --ntasks=1
##SBATCH --array=1-10          # an array: each task registers as JOB_TASK
#
# sbatch passes the submitting shell's environment (--export=ALL, the default),
# so JOBMON_SERVER and X509_USER_PROXY set there reach the job.  The proxy file
# must be readable on the worker node: keep it on a shared filesystem, e.g.
#     voms-proxy-init --out "$HOME/.x509up" && export X509_USER_PROXY=$HOME/.x509up
set -euo pipefail

export JOBMON_SERVER=${JOBMON_SERVER:-https://jobmon.example.org:8443/RPC2}

# sbatch starts the script in the submission directory: jobmon-query sees that
# directory (the working directory; --workdir DIR for another) and nothing above it.

# exec: jobmon-run becomes the batch step's process, so that scancel's signals
# (and `scancel --batch --signal=USR1`) reach it, and it passes them on to the
# command.  It exits with the command's status, which Slurm records.  The daemon's
# log is .jobmon-daemon-<JOB>.log in this directory.
exec jobmon-run --allow-signal USR1 -- ./analyse.sh input.dat
