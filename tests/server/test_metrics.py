"""
Tests for L{jobmon.server.metrics}.
"""

from twisted.trial.unittest import SynchronousTestCase

from jobmon.server.metrics import Metrics


class LabelCacheTests(SynchronousTestCase):
    """
    L{LabelCache} hands out the metric's own children, once looked up.
    """

    def test_sameChild(self):
        """
        The same labels give the same child as the metric's C{labels},
        and counts land in the metric.
        """
        metrics = Metrics()
        child = metrics.queries.labels("stat", "ok")
        self.assertIs(child, metrics.queries.metric.labels("stat", "ok"))
        self.assertIs(metrics.queries.labels("stat", "ok"), child)
        child.observe(0.001)
        self.assertIn(b'jobmon_query_seconds_count{op="stat",outcome="ok"} 1.0',
                      metrics.render())
