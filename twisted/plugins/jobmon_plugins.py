"""
twistd plugins for JobMon: C{twistd jobmon-server} and C{twistd jobmon-daemon}.

Kept tiny on purpose: each real module is imported only when its plugin runs.
"""

from twisted.application.service import ServiceMaker

jobmonServer = ServiceMaker(
    "JobMon server",
    "jobmon.server.service",
    "The JobMon central server: XML-RPC over HTTPS and job wake channels.",
    "jobmon-server",
)

jobmonDaemon = ServiceMaker(
    "JobMon job daemon",
    "jobmon.worker.daemon",
    "The JobMon job daemon: registers a running job and answers queries.",
    "jobmon-daemon",
)
