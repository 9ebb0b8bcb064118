"""Cross-channel consistency: a customer told different prices, offers or answers on different channels."""
