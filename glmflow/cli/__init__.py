"""The BIDS-App command line."""
