"""
The job side: the job daemon (C{twistd -n jobmon-daemon},
L{jobmon.worker.daemon}) and what it runs for a query (operations, files,
processes, site commands), and the job wrapper C{jobmon-run}.

Nothing here is imported by the server or by the client.
"""
