"""The read models: one module per view, a pure fold from SPEC §5 events to rows, and
store.py, which keeps the rows and the consumed positions in the database."""
