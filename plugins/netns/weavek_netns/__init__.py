"""weavek runtime ``netns``: containers are named network namespaces or processes.

``weavek launch --runtime netns``. :mod:`weavek_netns.plumbing` is the
data plane (bridge, veth pairs, addresses, routes) that the docker and
containerd runtimes reuse.
"""

from __future__ import annotations
