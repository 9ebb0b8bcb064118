"""Returned-mail flags: an address whose letters keep coming back is flagged undeliverable for every channel.

A returned letter says the address data is wrong. When ``Rules.flag_threshold`` letters to one address come back
within ``Rules.flag_window_days``, the address is flagged (``AddressFlagged``); a letter sent to a flagged address
raises ``MailToFlaggedAddress`` so the mail producers stop; a changed or confirmed address clears the flag
(``AddressFlagCleared``). The ``address_flags`` table holds the latest state per (customer, address) and the
suppression list the mail producers read.
"""
