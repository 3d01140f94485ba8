"""Usage billing through Lago: built in its own issue."""
