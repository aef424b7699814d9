"""Seeded neighbour generators per modality (text, image, audio, video)."""

from mmia.perturb.neighbours import Neighbour, NeighbourConfig, NeighbourMaker, resolve_field

__all__ = ["Neighbour", "NeighbourConfig", "NeighbourMaker", "resolve_field"]
