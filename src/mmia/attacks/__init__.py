"""Membership-inference methods and their registry."""

from mmia.attacks.registry import AttackSpec, find_attack, get_attack, list_attacks, register_attack

__all__ = ["AttackSpec", "find_attack", "get_attack", "list_attacks", "register_attack"]
