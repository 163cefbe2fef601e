"""
A sample batch job for the demo: it works in its directory for a while,
writing a log line every half second, a results file and a checkpoint.
"""

import os
import sys
import time

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 600
os.makedirs("output", exist_ok=True)
with open("job.log", "a", buffering=1) as log:
    log.write("starting simulation, {} events\n".format(steps * 100))
    for step in range(1, steps + 1):
        log.write("step {:4d}: processed {:6d} events, chi2/ndf = {:.3f}\n".format(
            step, step * 100, 1.0 + 0.5 / step))
        if step % 10 == 1:
            with open(os.path.join("output", "histograms.dat"), "w") as out:
                for b in range(20):
                    out.write("{} {}\n".format(b, (b * step) % 97))
            with open("checkpoint.txt", "w") as cp:
                cp.write("last step {}\n".format(step))
        time.sleep(0.5)
    log.write("done\n")
