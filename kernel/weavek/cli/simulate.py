"""``weavek simulate``: a whole cluster inside this process, on the deterministic simulator.

It runs the real kernel -- allocators, ring merges, space requests, the wire
codec -- with a simulated network and a virtual clock, using the init
strategy plugin the user names. It is the quickest way to see weavek work,
and every run is reproducible from its ``--seed``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from weavek.core.address import AddressError, parse_cidr
from weavek.core.peer import format_peer_name
from weavek.core.status import ipam_lines, state_text
from weavek.core.strategy import InitArgumentError, InitStrategy
from weavek.plugins import UnknownPluginError, make_plugin_manager, parse_plugin_arg, resolve


def simulate(
    peers: Annotated[int, typer.Option(min=1, max=64, help="Peers in the cluster.")] = 5,
    ipalloc_range: Annotated[
        str, typer.Option("--ipalloc-range", help="The range the peers share.")
    ] = "10.32.0.0/12",
    init: Annotated[
        str,
        typer.Option(help="Init strategy plugin; 'seed' divides the range among --seeds peers."),
    ] = "seed",
    seeds: Annotated[
        int, typer.Option(min=1, help="How many peers the range is first divided among.")
    ] = 3,
    allocations: Annotated[
        int, typer.Option(min=0, help="Addresses to allocate, spread over the peers.")
    ] = 10,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same run.")] = 0,
) -> None:
    """Run a cluster of peers in this process and allocate addresses on every peer."""
    from weavek.testing.cluster import Cluster, peer_name
    from weavek.testing.invariants import check_converged, check_safety

    try:
        universe = parse_cidr(ipalloc_range)
    except AddressError as err:
        raise typer.BadParameter(str(err), param_hint="--ipalloc-range") from None
    name, arg = parse_plugin_arg(init)
    try:
        strategy_cls = resolve(make_plugin_manager(), "init", name)
    except UnknownPluginError as err:
        raise typer.BadParameter(str(err), param_hint="--init") from None
    chosen = [peer_name(i) for i in range(min(seeds, peers))]
    if name == "seed" and arg is None:
        arg = ",".join(format_peer_name(p) for p in chosen)

    def make_strategy(me: int, _all: object) -> InitStrategy:
        return strategy_cls(arg, me=me, peers_named=peers - 1)

    try:
        make_strategy(chosen[0], None)
    except InitArgumentError as err:
        raise typer.BadParameter(str(err), param_hint="--init") from None

    cluster = Cluster(peers, universe=universe, seed=seed, strategy=make_strategy)
    requests = [
        (i % peers, f"container-{i}", cluster.allocate(i % peers, f"container-{i}"))
        for i in range(allocations)
    ]
    if not cluster.settle():
        typer.echo("the cluster did not settle; pending requests remain", err=True)
        raise typer.Exit(1)
    for index, ident, request in requests:
        typer.echo(f"peer-{index}  {ident:<14} {cluster.replies[request]}")
    check_safety(cluster)
    cluster.converge()  # free counts travel with later gossip
    check_converged(cluster)
    first = cluster.allocator(0)
    typer.echo("")
    typer.echo(f"Status: {state_text(first)}   Range: {first.universe}")
    for line in ipam_lines(first):
        typer.echo(line)
    unique = len({str(cluster.replies[r]) for _, _, r in requests})
    typer.echo(
        f"\n{allocations} allocations on {peers} peers, {unique} distinct addresses; "
        f"rings converged after {cluster.now:.1f} virtual seconds"
    )
