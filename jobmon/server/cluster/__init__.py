"""
Several JobMon servers sharing one job registry (see C{docs/SCALING.md}).

Without C{--redis} a server keeps everything in its own memory, as it always
did.  With it, each server keeps its own jobs (their wake channels, queued
requests and records) in memory as before, and mirrors the records into a
shared store (L{jobmon.server.cluster.store}): which server holds which job,
for whom.  A query for a job held by another server is routed there over
the store's messages and its result comes back the same way.
"""
