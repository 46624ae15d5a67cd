"""What reaches the customer (SPEC §14): the partner profile, invoice, statement and notice
documents rendered from Jinja2 templates to HTML and PDF, and their delivery by email.

Pure reading: documents are built from a customer's stored events (SPEC §5 shape); nothing
here changes the ledger.
"""
