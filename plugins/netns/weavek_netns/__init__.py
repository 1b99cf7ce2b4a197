"""weavek runtime ``netns``: containers are named network namespaces or processes.

``weavek launch --runtime netns``. :mod:`weavek_netns.plumbing` is the
data plane (bridge, veth pairs, addresses, routes) that the docker and
containerd runtimes reuse, and :mod:`weavek_netns.daemon` what else they
share (attach by pid, the view of the daemon's containers, reconnection).
"""

from __future__ import annotations
