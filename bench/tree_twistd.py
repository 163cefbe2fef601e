"""
Run C{twistd} with the C{jobmon-server} and C{jobmon-daemon} plugins of one
source tree, for L{compare_trees}.

    JOBMON_TREE=/path/to/tree python bench/tree_twistd.py TWISTD-ARGS...

Twisted looks for plugins in every C{twisted/plugins} directory on the path,
but a plugin module found twice by name (C{jobmon_plugins}) is taken from
the first directory, the installed Twisted's own: a checkout of an older
layout (C{jobmon.server}, C{jobmon.daemon}) would get the installed plugin
(C{jobmon.server.service}, C{jobmon.worker.daemon}) and fail to start.
This script reads C{twisted/plugins/jobmon_plugins.py} of C{JOBMON_TREE}
and gives its two plugins to C{twistd} in place of the installed ones; the
rest of C{twistd} runs unchanged.  The JobMon sources are not changed.

With C{TREE_TWISTD_LOG} set, once the service is made the script appends a
line to that file: its pid, the plugin, the module that made the service
and the file it was loaded from, and the directory every loaded C{jobmon}
module came from, so that a comparison can show which code ran.
"""

import importlib.util
import json
import os
import sys

JOBMON_TAPNAMES = ("jobmon-server", "jobmon-daemon")


def _treePlugins(root):
    path = os.path.join(root, "twisted", "plugins", "jobmon_plugins.py")
    spec = importlib.util.spec_from_file_location("_tree_jobmon_plugins", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [getattr(module, name) for name in dir(module)
            if getattr(getattr(module, name), "tapname", None) in JOBMON_TAPNAMES]


class _LoggedMaker:
    """
    A plugin of the tree that notes, once its service is made, where the
    code that made it came from.
    """

    def __init__(self, maker, logPath):
        self._maker = maker
        self._logPath = logPath
        for attr in ("name", "module", "description", "tapname"):
            setattr(self, attr, getattr(maker, attr))

    @property
    def options(self):
        return self._maker.options

    def makeService(self, options):
        service = self._maker.makeService(options)
        if self._logPath:
            module = sys.modules[self.module]
            dirs = sorted({os.path.dirname(os.path.abspath(m.__file__))
                           for name, m in list(sys.modules.items())
                           if (name == "jobmon" or name.startswith("jobmon."))
                           and getattr(m, "__file__", None)})
            with open(self._logPath, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "plugin": self.tapname,
                                    "module": self.module, "file": module.__file__,
                                    "jobmon_dirs": dirs}) + "\n")
        return service


def install(root, logPath=None):
    """
    Make C{twistd} use the JobMon plugins of the tree at C{root}.
    """
    from zope.interface import directlyProvides
    from twisted import plugin
    from twisted.application import app, service

    ours = []
    for maker in _treePlugins(root):
        logged = _LoggedMaker(maker, logPath)
        directlyProvides(logged, service.IServiceMaker, plugin.IPlugin)
        ours.append(logged)

    def getPlugins(interface, package=None):
        for found in plugin.getPlugins(interface, package):
            if getattr(found, "tapname", None) not in JOBMON_TAPNAMES:
                yield found
        if interface is service.IServiceMaker:
            yield from ours

    app.ServerOptions._getPlugins = staticmethod(getPlugins)


def main():
    """
    Install the tree's plugins, then run C{twistd} with the arguments given.
    """
    # This directory holds another tree's bench scripts, not JobMon: keep
    # it off the path of the measured code.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    install(os.environ["JOBMON_TREE"], os.environ.get("TREE_TWISTD_LOG"))
    from twisted.scripts.twistd import run

    sys.argv = [os.path.join(os.path.dirname(sys.executable), "twistd")] + sys.argv[1:]
    run()


if __name__ == "__main__":
    main()
