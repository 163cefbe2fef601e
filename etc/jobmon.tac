# The JobMon server as a twistd application file:
#
#     JOBMON_CONFIG=/etc/jobmon/server.toml twistd -n -y etc/jobmon.tac
#
# It runs the server from its configuration file, named by the JOBMON_CONFIG
# environment variable (see docs/CONFIG.md and etc/server.toml.example), and
# takes the same options as "twistd jobmon-server" from the
# JOBMON_SERVER_ARGS environment variable (shell-quoted), so that a service
# manager can set them without editing this file, e.g.
#
#     JOBMON_SERVER_ARGS="--https-port 8443 --admin '/DC=org/CN=Admin'"
#
# As on the command line, options in JOBMON_SERVER_ARGS win over the file;
# a --config in JOBMON_SERVER_ARGS wins over JOBMON_CONFIG.  A bad
# configuration stops start-up with one line naming the file and the key,
# and so does a missing or bad file it names (host key, token issuers...).

import os
import shlex

from twisted.application.service import Application
from twisted.python import usage

from jobmon.server.service import Options, makeService

args = shlex.split(os.environ.get("JOBMON_SERVER_ARGS", ""))
if os.environ.get("JOBMON_CONFIG"):
    args = ["--config", os.environ["JOBMON_CONFIG"]] + args
options = Options()
try:
    options.parseOptions(args)
except usage.UsageError as e:
    raise SystemExit("jobmon.tac: {}".format(e))

application = Application("jobmon-server")
makeService(options, program="jobmon.tac").setServiceParent(application)
