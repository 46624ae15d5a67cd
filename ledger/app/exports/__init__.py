"""Exports for the accounting system (SPEC §12): the journal line by line (`journal`), and
the invoices of a billing period as the invoices view (`invoices`) or as Xero's sales-invoice
import file (`xero`). Pure over SPEC §5 events: the caller reads the store and writes files."""
