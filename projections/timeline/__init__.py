"""The cross-channel customer timeline: every interaction of a customer, on every channel, in time order."""
