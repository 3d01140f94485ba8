# Usage billing through Lago (customer mapping, outbox, wallets) is built in its own issue.
