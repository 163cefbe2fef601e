#!/bin/sh
# The executable of examples/htcondor-job.sub: run the job's command (the submit
# file's `arguments`) under jobmon-run, in the job's scratch directory.
#
# HTCondor gives the job everything jobmon-run needs: $_CONDOR_JOB_AD (the job
# id, Cluster.Proc), $X509_USER_PROXY (the proxy transferred with
# x509userproxy) and $JOBMON_SERVER (from the submit file's environment).
# If jobmon-run is not installed on this node, the command runs unmonitored.
#
# With use_oauth_services in the submit file, HTCondor keeps the job's bearer
# token in $_CONDOR_CREDS; point the WLCG discovery variable at it (jobmon-run
# then registers the job with the token rather than the proxy).
if [ -z "${BEARER_TOKEN_FILE:-}" ] && [ -n "${_CONDOR_CREDS:-}" ]; then
    for token in "$_CONDOR_CREDS"/scitokens.use "$_CONDOR_CREDS"/*.use; do
        if [ -r "$token" ]; then
            BEARER_TOKEN_FILE=$token
            export BEARER_TOKEN_FILE
            break
        fi
    done
fi
if command -v jobmon-run >/dev/null 2>&1; then
    exec jobmon-run -- "$@"
fi
echo "htcondor-wrapper.sh: jobmon-run not found; running unmonitored" >&2
exec "$@"
