"""
The central server (C{twistd jobmon-server}): options and service wiring
(L{jobmon.server.service}), TLS and who is calling, the hub that links each
user's query to the job's result, admission and rate limits, the registry
and pending table, audit, history, metrics and logs.

Nothing here is imported by the job side or by the client.
"""
