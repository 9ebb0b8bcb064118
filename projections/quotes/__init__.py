"""Every value told to a customer (prices, offers, answers), on every channel: the basis for consistency checks."""
