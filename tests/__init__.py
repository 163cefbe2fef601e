"""
JobMon's tests.

Property tests run on shared, loaded 2-core CI machines: Hypothesis's
timing checks (per-example deadline, "input generation is slow") measure the
machine, not the code, so the suite's profile turns them off.  Every other
health check stays on.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "jobmon", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("jobmon")
