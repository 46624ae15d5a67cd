"""The pure domain: money, the customer account aggregate, policies and posting rules.

Imports nothing but the standard library, pydantic and `eventsourcing.domain`.
"""
