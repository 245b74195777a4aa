"""Angor projects (crowdfunding on Bitcoin and Nostr): an indexer's figures and the founders' Nostr events,
verified, for the projects the operator follows (docs/angor.md)."""
