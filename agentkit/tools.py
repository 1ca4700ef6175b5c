"""Placeholder: ``@tool`` and ``Tool`` land here."""

from __future__ import annotations


class Tool:
    name: str
