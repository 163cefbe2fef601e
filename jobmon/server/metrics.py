"""
Prometheus metrics of the server, and the C{/metrics} and C{/healthz}
resources served on their own port.

The hub reports events to a L{Metrics} object; gauges that describe state
(jobs by mode, pending queries) are read from the hub when scraped, so they
cannot drift.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from twisted.web.resource import Resource

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Query latency buckets, seconds."""


class _HubCollector:
    """
    Gauges read from the hub at scrape time.
    """

    def __init__(self, hub):
        self.hub = hub

    def collect(self):
        jobs = GaugeMetricFamily(
            "jobmon_jobs", "Registered jobs, by wake mode and state.", labels=["mode", "state"]
        )
        counts = {}
        for record in self.hub.registry.jobs():
            key = (record.mode, record.state)
            counts[key] = counts.get(key, 0) + 1
        for mode in ("tcp", "udp", "poll"):
            for state in ("connecting", "ready"):
                jobs.add_metric([mode, state], counts.get((mode, state), 0))
        yield jobs
        sizes = self.hub.sizes()
        yield GaugeMetricFamily(
            "jobmon_pending_queries", "Queries queued or running.", value=sizes["requests"]
        )
        yield GaugeMetricFamily(
            "jobmon_wake_channels", "Open TCP wake channels.", value=sizes["channels"]
        )
        yield GaugeMetricFamily(
            "jobmon_pending_polls", "Poll-mode daemons waiting for work.", value=sizes["polls"]
        )
        cluster = getattr(self.hub, "clusterState", None)
        if cluster is not None:
            for name, value in cluster().items():
                yield GaugeMetricFamily("jobmon_cluster_" + name, CLUSTER_GAUGES[name],
                                        value=value)


CLUSTER_GAUGES = {
    "store_up": "1 while the cluster's store (Redis) answers this server, else 0.",
    "servers": "Live servers of the cluster, as this server last saw them.",
    "jobs": "Jobs registered in the whole cluster (the live servers' counts).",
    "leader": "1 if this server leads the cluster's cleanup, else 0.",
    "serving": "Queries of other servers this server is serving now.",
}


class LabelCache:
    """
    A labelled metric whose children are looked up in a plain dict: its
    C{labels()} (a lock, a validation and a tuple per call) is on every
    query's path.  Children are never removed, as the metric keeps them
    too.
    """

    def __init__(self, metric):
        self.metric = metric
        self._children = {}

    def labels(self, *values):
        """
        The child of the metric for C{values} (positional only).
        """
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics:
    """
    The server's metrics, in a registry of their own.
    """

    def __init__(self):
        self.registry = CollectorRegistry()
        self.queries = LabelCache(Histogram(
            "jobmon_query_seconds",
            "Time from a query's arrival to its answer, by op and outcome.",
            ["op", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ))
        self.refusals = Counter(
            "jobmon_refusals", "Requests refused, by reason.", ["reason"], registry=self.registry
        )
        self.wakes = LabelCache(Counter(
            "jobmon_wakes_sent", "Wakes sent, by mode.", ["mode"], registry=self.registry
        ))
        self.wakeRepeats = Counter(
            "jobmon_udp_wake_repeats",
            "UDP wakes sent again because the daemon had not fetched (a lost or slow wake).",
            registry=self.registry,
        )
        self.wakesUnanswered = Counter(
            "jobmon_udp_wakes_unanswered",
            "UDP wakes given up after the query timeout.",
            registry=self.registry,
        )
        self.removals = Counter(
            "jobmon_job_removals", "Jobs removed, by reason.", ["reason"], registry=self.registry
        )
        self.registrations = Counter(
            "jobmon_registrations", "Registrations, by wake mode.", ["mode"],
            registry=self.registry,
        )
        self.rateLimited = Counter(
            "jobmon_rate_limited",
            "Calls refused by a rate limit or the cap on jobs per owner, by limit (user, "
            "query, daemon, auth, registration, jobs).",
            ["limit"], registry=self.registry,
        )

    def watch(self, hub):
        """
        Report the hub's state (jobs, pending queries, channels) when
        scraped.
        """
        self.registry.register(_HubCollector(hub))

    def render(self):
        """
        The metrics in Prometheus' text format.
        """
        return generate_latest(self.registry)


class NullMetrics:
    """
    Metrics that go nowhere, for a hub without a metrics port.
    """

    class _Nothing:
        def labels(self, *args, **kwargs):
            return self

        def inc(self, amount=1):
            pass

        def observe(self, value):
            pass

    def __init__(self):
        nothing = self._Nothing()
        self.queries = self.refusals = self.wakes = self.wakeRepeats = nothing
        self.wakesUnanswered = self.removals = self.registrations = nothing
        self.rateLimited = nothing


class MetricsResource(Resource):
    """
    C{/metrics} (Prometheus text format) and C{/healthz} (C{ok} while the
    server accepts work and can write its files; 503 while it shuts down,
    or naming each file it cannot write, and why).

    @ivar writability: the L{jobmon.server.health.Writability} of the
        server's files, or C{None}.
    """

    isLeaf = True

    def __init__(self, metrics, hub, writability=None):
        super().__init__()
        self.metrics = metrics
        self.hub = hub
        self.writability = writability

    def render_GET(self, request):
        if request.path == b"/metrics":
            request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            return self.metrics.render()
        if request.path == b"/healthz":
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            if self.hub.stopping:
                request.setResponseCode(503)
                return b"stopping\n"
            problems = self.writability.describe() if self.writability is not None else []
            problems += getattr(self.hub, "healthProblems", list)()
            if problems:
                request.setResponseCode(503)
                return "".join(p + "\n" for p in problems).encode("utf-8")
            return b"ok\n"
        request.setResponseCode(404)
        return b"not found: try /metrics or /healthz\n"
