"""Sandboxes: one VM, its place on the network and its agent, apart from the containers in it.

    sandboxes = Sandboxes(config, hv, network)
    sb = await sandboxes.create(SandboxSpec(...), prepare=register_streams)
    await sb.agent.create_container(cid, mounts, process)   # a container inside it
    await sandboxes.connect(sb, NicRequest(net_id))         # hot-plug one more network
    await sandboxes.release(sb)                              # VM, taps, ports gone

Today each sandbox holds one container (its ID is ``hyper-<container id[:12]>``); the
shape allows several (pods) without changing callers.
"""

from .pooled import BlankDisk
from .sandbox import NicRequest, Sandbox, SandboxSpec
from .service import Sandboxes

__all__ = ["BlankDisk", "NicRequest", "Sandbox", "SandboxSpec", "Sandboxes"]
