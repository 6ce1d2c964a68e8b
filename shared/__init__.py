"""Code the four services share: the contract (topics, event schemas, envelope) and the wiring."""
