# The JobMon server as a twistd application file:
#
#     twistd -n -y etc/jobmon.tac
#
# It takes the same options as "twistd jobmon-server", from the
# JOBMON_SERVER_ARGS environment variable (shell-quoted), so that a service
# manager can set them without editing this file, e.g.
#
#     JOBMON_SERVER_ARGS="--https-port 8443 --admin '/DC=org/CN=Admin'"

import os
import shlex

from twisted.application.service import Application

from jobmon.server import Options, makeService

options = Options()
options.parseOptions(shlex.split(os.environ.get("JOBMON_SERVER_ARGS", "")))

application = Application("jobmon-server")
makeService(options).setServiceParent(application)
